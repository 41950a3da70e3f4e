//! The stored form: v1-compatible JSON (camelCase, bifrost-v1.md §6) plus multi-step forms, and
//! the definition checks run when a form is saved.
//!
//! May depend on: `visibility` (expressions are parsed to check them), `regex`, `time`. No I/O.
//!
//! Invariants:
//! - Reading JSON never fails on unknown properties (v1 documents and newer clients load); new
//!   properties (`steps`, `validation.integer`) are optional and omitted when unset, so v1
//!   clients read what we write.
//! - A form that passed [`Form::check`] can be validated: every `validation.pattern` compiles with
//!   [`compile_pattern`] and every expression parses, so building a
//!   [`Validator`](super::validate::Validator) for it succeeds.
//! - Field names are unique across the whole form (all steps), because a submission is one flat
//!   object keyed by field name.

use std::collections::{BTreeMap, HashSet};

use regex::{Regex, RegexBuilder};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::visibility::Expression;

/// The `orgId` of forms visible to every organization.
pub const GLOBAL_ORG: &str = "GLOBAL";
/// At most this many fields per form (all steps together), as v1.
pub const MAX_FIELDS: usize = 50;
/// Form names are 1..=200 characters, as v1.
pub const MAX_NAME_CHARS: usize = 200;
/// Longer `validation.pattern`s are rejected: they are author input compiled on the server.
pub const MAX_PATTERN_CHARS: usize = 500;
/// Compiled-program limit for patterns, so `\w{9999}`-style patterns cannot eat memory.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// A form: what a user fills in to run `linkedWorkflow`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Form {
    pub id: String,
    /// `GLOBAL` or the owning organization's id.
    pub org_id: String,
    /// 1..=200 characters.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The workflow a submission runs.
    pub linked_workflow: String,
    pub form_schema: FormSchema,
    #[serde(default = "default_true")]
    pub is_active: bool,
    #[serde(default)]
    pub is_global: bool,
    #[serde(default)]
    pub access_level: AccessLevel,
    pub created_by: String,
    /// RFC 3339.
    #[serde(with = "timestamp")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
    /// RFC 3339.
    #[serde(with = "timestamp")]
    #[schemars(with = "String")]
    pub updated_at: OffsetDateTime,
    /// Workflow run when the form opens; its result is `context.workflow` in expressions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_workflow_id: Option<String>,
    /// URL query parameters passed to the launch workflow (and visible as `context.query`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_query_params: Option<Vec<String>>,
    /// Inputs of the launch workflow, before form data and query parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_launch_params: Option<Map<String, Value>>,
}

/// The create/update request body of a form: a [`Form`] without the server-owned `id`,
/// `createdBy`, `createdAt` and `updatedAt`, with `orgId`, `isActive`, `isGlobal` and
/// `accessLevel` optional. An update replaces every editable property (PUT semantics).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FormInput {
    /// `GLOBAL` or an organization id; absent = the caller decides (usually the request scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[schemars(length(min = 1), regex(pattern = NON_BLANK))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The workflow a submission runs (must be in the workspace).
    #[schemars(length(min = 1), regex(pattern = NON_BLANK))]
    pub linked_workflow: String,
    pub form_schema: FormSchema,
    /// Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    /// Default: whether the form's `orgId` is `GLOBAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_global: Option<bool>,
    /// Default `role_based`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_level: Option<AccessLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_workflow_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_query_params: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_launch_params: Option<Map<String, Value>>,
}

/// The fields of a form: either one flat list (`fields`, v1) or a wizard (`steps`), never both.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FormSchema {
    /// Always written (v1 clients expect it); empty when the form has `steps`.
    #[serde(default)]
    pub fields: Vec<FormField>,
    /// Multi-step form (extension, not in v1): the steps in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub steps: Option<Vec<FormStep>>,
}

/// Text with something besides white space (what the definition checks call "required").
const NON_BLANK: &str = r"\S";

/// An optional whole number, written as an integer or as a float with no fraction (JSON does
/// not tell `5` from `5.0`, and JSON Schema counts both as integers).
fn whole_number<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<u32>, D::Error> {
    let Some(n) = Option::<f64>::deserialize(de)? else {
        return Ok(None);
    };
    if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) {
        Ok(Some(n as u32))
    } else {
        Err(serde::de::Error::custom(format!(
            "expected a whole number from 0 to {}, got {n}",
            u32::MAX
        )))
    }
}

/// One page of a multi-step form.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FormStep {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub fields: Vec<FormField>,
}

/// Who may open and submit a form (enforced by the HTTP layer).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessLevel {
    Public,
    Authenticated,
    #[default]
    RoleBased,
}

/// The kind of input a field renders and accepts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Text,
    Email,
    Number,
    Select,
    /// Extension (not in v1): several options, submitted as an array.
    Multiselect,
    Checkbox,
    Textarea,
    Radio,
    Datetime,
    /// Display-only: shows `content`, takes no input.
    Markdown,
    /// Display-only: shows `content`, takes no input.
    Html,
    File,
}

impl FieldType {
    /// Shows `content` and never takes a value.
    pub fn is_display_only(self) -> bool {
        matches!(self, Self::Markdown | Self::Html)
    }

    /// Its value is chosen from `options` or from a data provider.
    pub fn has_options(self) -> bool {
        matches!(self, Self::Select | Self::Radio | Self::Multiselect)
    }
}

/// One form field (v1 `FormField`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FormField {
    /// The key of the value in a submission and the workflow parameter it fills:
    /// `^[A-Za-z_][A-Za-z0-9_]*$`.
    pub name: String,
    /// Required except for `markdown` and `html` fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<FieldValidation>,
    /// Data provider whose options fill the field (its options are then dynamic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_provider: Option<String>,
    /// Inputs of `dataProvider`, by provider parameter name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_provider_inputs: Option<BTreeMap<String, DataProviderInput>>,
    /// Used when a submission leaves the field out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help_text: Option<String>,
    /// Shown only while this expression is true (see `forms::visibility`); a hidden field is
    /// neither required nor submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility_expression: Option<String>,
    /// Choices of `select`, `radio` and `multiselect` fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<FieldOption>>,
    /// `file` fields: accepted MIME types (`image/*` wildcards, `.pdf` extensions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_types: Option<Vec<String>>,
    /// `file` fields: several files, submitted as an array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple: Option<bool>,
    /// `file` fields: the largest accepted file, in MiB (a whole number; `5.0` reads as 5).
    #[serde(
        default,
        rename = "maxSizeMB",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_number"
    )]
    #[schemars(range(min = 1))]
    pub max_size_mb: Option<u32>,
    /// `markdown` and `html` fields: what they show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The value may be pre-filled from the URL query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_as_query_param: Option<bool>,
}

impl FormField {
    /// A field with only a name and a type set.
    pub fn new(name: impl Into<String>, field_type: FieldType) -> Self {
        Self {
            name: name.into(),
            label: None,
            field_type,
            required: false,
            validation: None,
            data_provider: None,
            data_provider_inputs: None,
            default_value: None,
            placeholder: None,
            help_text: None,
            visibility_expression: None,
            options: None,
            allowed_types: None,
            multiple: None,
            max_size_mb: None,
            content: None,
            allow_as_query_param: None,
        }
    }

    /// `file` fields with `multiple: true` take an array of files.
    pub fn is_multiple(&self) -> bool {
        self.multiple == Some(true)
    }
}

/// Checks on a field's value. `min`/`max` bound a text's length, a number's value and a
/// multiselect's count.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldValidation {
    /// Regular expression the whole value must match (Rust `regex` syntax, no look-around).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_number"
    )]
    pub min: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_number"
    )]
    pub max: Option<f64>,
    /// Replaces the default message of pattern, min and max failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Extension (not in v1): `number` fields accept whole numbers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integer: Option<bool>,
}

/// One choice of a `select`, `radio` or `multiselect` field.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct FieldOption {
    pub label: String,
    pub value: Value,
}

/// Where a data-provider input comes from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ProviderInputMode {
    /// A constant: `value`.
    Static,
    /// Another field's current value: `fieldName`.
    FieldRef,
    /// An expression over the form context: `expression`.
    Expression,
}

/// One data-provider input: exactly the member its `mode` needs is set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataProviderInput {
    pub mode: ProviderInputMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// One problem with a form definition.
#[derive(Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldIssue {
    /// JSON path of the offending property, e.g. `formSchema.fields[2].options`.
    pub field: String,
    pub message: String,
}

impl FieldIssue {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

fn default_true() -> bool {
    true
}

impl FormSchema {
    /// Every field, step by step, in order.
    pub fn all_fields(&self) -> impl Iterator<Item = &FormField> + '_ {
        self.fields.iter().chain(
            self.steps
                .iter()
                .flatten()
                .flat_map(|step| step.fields.iter()),
        )
    }

    /// The fields of step `n` (0-based). A flat form is one step: step 0 is `fields`.
    /// `None` when there is no such step.
    pub fn step_fields(&self, n: usize) -> Option<&[FormField]> {
        match &self.steps {
            Some(steps) => steps.get(n).map(|step| step.fields.as_slice()),
            None if n == 0 => Some(&self.fields),
            None => None,
        }
    }

    /// How many steps the form has (a flat form has one).
    pub fn step_count(&self) -> usize {
        self.steps.as_ref().map_or(1, Vec::len)
    }

    /// The field called `name`, in any step.
    pub fn field(&self, name: &str) -> Option<&FormField> {
        self.all_fields().find(|f| f.name == name)
    }

    /// Every rule of a stored schema; issue paths start with `formSchema`.
    pub fn check(&self) -> Result<(), Vec<FieldIssue>> {
        let mut issues = Vec::new();
        check_schema(self, &mut issues);
        if issues.is_empty() {
            Ok(())
        } else {
            Err(issues)
        }
    }
}

impl Form {
    /// The definition checks of a save: name, linked workflow and every schema rule. All
    /// problems are listed, each with the JSON path of the offending property.
    pub fn check(&self) -> Result<(), Vec<FieldIssue>> {
        check_form(&self.name, &self.linked_workflow, &self.form_schema)
    }

    /// Replaces every editable property with the request's (`orgId` and the server-owned
    /// properties stay as they are; `isGlobal` is recomputed from `orgId` when absent).
    pub fn apply(&mut self, input: FormInput, now: OffsetDateTime) {
        let org_id = self.org_id.clone();
        let created_by = std::mem::take(&mut self.created_by);
        let mut updated = input.into_form(std::mem::take(&mut self.id), org_id, created_by, now);
        updated.created_at = self.created_at;
        *self = updated;
    }
}

impl FormInput {
    /// The same checks as [`Form::check`].
    pub fn check(&self) -> Result<(), Vec<FieldIssue>> {
        check_form(&self.name, &self.linked_workflow, &self.form_schema)
    }

    /// The stored form. `org_id` is the caller's decision (the request's `orgId` is only a
    /// wish the HTTP layer checks against the caller's scope).
    pub fn into_form(
        self,
        id: String,
        org_id: String,
        created_by: String,
        now: OffsetDateTime,
    ) -> Form {
        let is_global = self.is_global.unwrap_or(org_id == GLOBAL_ORG);
        Form {
            id,
            org_id,
            name: self.name,
            description: self.description,
            linked_workflow: self.linked_workflow,
            form_schema: self.form_schema,
            is_active: self.is_active.unwrap_or(true),
            is_global,
            access_level: self.access_level.unwrap_or_default(),
            created_by,
            created_at: now,
            updated_at: now,
            launch_workflow_id: self.launch_workflow_id,
            allowed_query_params: self.allowed_query_params,
            default_launch_params: self.default_launch_params,
        }
    }
}

/// Compiles a `validation.pattern` the way submissions are checked: anchored, so the whole
/// value must match (`^(?:pattern)$`). Rejects patterns over [`MAX_PATTERN_CHARS`].
pub fn compile_pattern(pattern: &str) -> Result<Regex, String> {
    if pattern.chars().count() > MAX_PATTERN_CHARS {
        return Err(format!(
            "must be at most {MAX_PATTERN_CHARS} characters long"
        ));
    }
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => "is too complex".to_owned(),
            // The syntax error's own text spans several lines with a caret diagram.
            other => format!(
                "is not a valid regular expression: {}",
                other
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("syntax error")
                    .trim()
            ),
        })
}

/// Whether `name` is usable as a field name (and a Python keyword argument):
/// `^[A-Za-z_][A-Za-z0-9_]*$`.
pub fn is_valid_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_form(
    name: &str,
    linked_workflow: &str,
    schema: &FormSchema,
) -> Result<(), Vec<FieldIssue>> {
    let mut issues = Vec::new();
    let name_chars = name.trim().chars().count();
    if name_chars == 0 {
        issues.push(FieldIssue::new("name", "is required"));
    } else if name.chars().count() > MAX_NAME_CHARS {
        issues.push(FieldIssue::new(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters long"),
        ));
    }
    if linked_workflow.trim().is_empty() {
        issues.push(FieldIssue::new("linkedWorkflow", "is required"));
    }
    check_schema(schema, &mut issues);
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues)
    }
}

fn check_schema(schema: &FormSchema, issues: &mut Vec<FieldIssue>) {
    // (path, field) for every field, so names can be checked across steps.
    let mut located: Vec<(String, &FormField)> = schema
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("formSchema.fields[{i}]"), f))
        .collect();
    if let Some(steps) = &schema.steps {
        if !schema.fields.is_empty() {
            issues.push(FieldIssue::new(
                "formSchema",
                "has both fields and steps; put the fields into steps",
            ));
        }
        if steps.is_empty() {
            issues.push(FieldIssue::new("formSchema.steps", "must not be empty"));
        }
        for (s, step) in steps.iter().enumerate() {
            let path = format!("formSchema.steps[{s}]");
            if step.title.trim().is_empty() {
                issues.push(FieldIssue::new(format!("{path}.title"), "is required"));
            }
            if step.fields.is_empty() {
                issues.push(FieldIssue::new(
                    format!("{path}.fields"),
                    "must not be empty",
                ));
            }
            located.extend(
                step.fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (format!("{path}.fields[{i}]"), f)),
            );
        }
    }
    if located.len() > MAX_FIELDS {
        issues.push(FieldIssue::new(
            if schema.steps.is_some() {
                "formSchema.steps"
            } else {
                "formSchema.fields"
            },
            format!(
                "has {} fields; at most {MAX_FIELDS} are allowed",
                located.len()
            ),
        ));
    }
    let names: HashSet<&str> = located.iter().map(|(_, f)| f.name.as_str()).collect();
    let mut seen = HashSet::new();
    for (path, field) in &located {
        if !seen.insert(field.name.as_str()) {
            issues.push(FieldIssue::new(
                format!("{path}.name"),
                format!("`{}` is used by another field", field.name),
            ));
        }
        check_field(path, field, &names, issues);
    }
}

fn check_field(path: &str, f: &FormField, names: &HashSet<&str>, issues: &mut Vec<FieldIssue>) {
    let mut issue = |member: &str, message: String| {
        issues.push(FieldIssue::new(format!("{path}.{member}"), message));
    };
    if !is_valid_field_name(&f.name) {
        issue(
            "name",
            "must start with a letter or `_` and contain only letters, digits and `_`".to_owned(),
        );
    }
    let blank = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
    if f.field_type.is_display_only() {
        if blank(&f.content) {
            issue(
                "content",
                "is required for markdown and html fields".to_owned(),
            );
        }
    } else if blank(&f.label) {
        issue("label", "is required".to_owned());
    }
    if f.field_type.has_options() {
        let has_options = f.options.as_ref().is_some_and(|o| !o.is_empty());
        if !has_options && f.data_provider.is_none() {
            issue(
                "options",
                "are required unless the field has a dataProvider".to_owned(),
            );
        }
    }
    if let Some(options) = &f.options {
        for (i, option) in options.iter().enumerate() {
            if options[..i].iter().any(|o| o.value == option.value) {
                issue(
                    &format!("options[{i}].value"),
                    "is the value of another option".to_owned(),
                );
            }
        }
    }
    if let Some(provider) = &f.data_provider
        && provider.trim().is_empty()
    {
        issue("dataProvider", "must not be empty".to_owned());
    }
    if let Some(inputs) = &f.data_provider_inputs {
        if f.data_provider.is_none() {
            issue("dataProviderInputs", "require a dataProvider".to_owned());
        }
        for (param, input) in inputs {
            let at = format!("dataProviderInputs.{param}");
            check_provider_input(input, names, &mut |member, message| {
                issue(&format!("{at}{member}"), message);
            });
        }
    }
    if let Some(v) = &f.validation {
        if let Some(pattern) = &v.pattern
            && let Err(message) = compile_pattern(pattern)
        {
            issue("validation.pattern", message);
        }
        if let (Some(min), Some(max)) = (v.min, v.max)
            && min > max
        {
            issue(
                "validation.min",
                "must not be greater than validation.max".to_owned(),
            );
        }
    }
    if let Some(expression) = &f.visibility_expression
        && let Err(e) = Expression::parse(expression)
    {
        issue("visibilityExpression", e.to_string());
    }
    if f.max_size_mb == Some(0) {
        issue("maxSizeMB", "must be at least 1".to_owned());
    }
}

/// `report(member_suffix, message)`; the suffix is `""` or `.value`, `.fieldName`, `.expression`.
fn check_provider_input(
    input: &DataProviderInput,
    names: &HashSet<&str>,
    report: &mut dyn FnMut(&str, String),
) {
    let (needed, mode) = match input.mode {
        ProviderInputMode::Static => ("value", "static"),
        ProviderInputMode::FieldRef => ("fieldName", "fieldRef"),
        ProviderInputMode::Expression => ("expression", "expression"),
    };
    let present = [
        ("value", input.value.is_some()),
        ("fieldName", input.field_name.is_some()),
        ("expression", input.expression.is_some()),
    ];
    for (member, is_set) in present {
        if member == needed && !is_set {
            report("", format!("mode `{mode}` requires `{needed}`"));
        } else if member != needed && is_set {
            report(
                &format!(".{member}"),
                format!("must not be set with mode `{mode}`"),
            );
        }
    }
    match input.mode {
        ProviderInputMode::Static => {}
        ProviderInputMode::FieldRef => {
            if let Some(name) = &input.field_name
                && !names.contains(name.as_str())
            {
                report(
                    ".fieldName",
                    format!("`{name}` is not a field of this form"),
                );
            }
        }
        ProviderInputMode::Expression => {
            if let Some(expression) = &input.expression
                && let Err(e) = Expression::parse(expression)
            {
                report(".expression", e.to_string());
            }
        }
    }
}

/// Whole numbers as JSON integers (`5`, not `5.0`), as v1 wrote them.
fn ser_opt_number<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => s.serialize_i64(*n as i64),
        Some(n) => s.serialize_f64(*n),
        None => s.serialize_none(),
    }
}

/// Parses a timestamp: RFC 3339, or without an offset (`YYYY-MM-DDTHH:MM[:SS[.fff]]`, as HTML
/// `datetime-local` inputs and Python's naive `isoformat()` write it) or a bare date, both read
/// as UTC because the server cannot know the writer's time zone.
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    use time::{Date, PrimitiveDateTime};

    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let naive = [
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"),
    ];
    if let Some(t) = naive
        .iter()
        .find_map(|format| PrimitiveDateTime::parse(s, format).ok())
    {
        return Some(t.assume_utc());
    }
    Date::parse(s, format_description!("[year]-[month]-[day]"))
        .ok()
        .map(|d| d.midnight().assume_utc())
}

/// RFC 3339 on output; [`parse_timestamp`]'s forms on input (v1 rows may lack an offset).
mod timestamp {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        time::serde::rfc3339::serialize(t, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_timestamp(&s)
            .ok_or_else(|| D::Error::custom(format!("`{s}` is not an RFC 3339 timestamp")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str, t: FieldType) -> FormField {
        let mut f = FormField::new(name, t);
        f.label = Some(name.to_owned());
        f
    }

    fn form(fields: Vec<FormField>) -> Form {
        Form {
            id: "f1".into(),
            org_id: GLOBAL_ORG.into(),
            name: "Onboard user".into(),
            description: None,
            linked_workflow: "onboard_user".into(),
            form_schema: FormSchema {
                fields,
                steps: None,
            },
            is_active: true,
            is_global: true,
            access_level: AccessLevel::RoleBased,
            created_by: "admin@example.com".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            launch_workflow_id: None,
            allowed_query_params: None,
            default_launch_params: None,
        }
    }

    fn stepped(steps: Vec<Vec<FormField>>) -> Form {
        let mut f = form(vec![]);
        f.form_schema.steps = Some(
            steps
                .into_iter()
                .enumerate()
                .map(|(i, fields)| FormStep {
                    title: format!("Step {i}"),
                    description: None,
                    fields,
                })
                .collect(),
        );
        f
    }

    /// The paths of the issues, for compact assertions.
    fn issues(f: &Form) -> Vec<String> {
        match f.check() {
            Ok(()) => vec![],
            Err(issues) => issues.into_iter().map(|i| i.field).collect(),
        }
    }

    fn select(name: &str, values: &[&str]) -> FormField {
        let mut f = field(name, FieldType::Select);
        f.options = Some(
            values
                .iter()
                .map(|v| FieldOption {
                    label: v.to_uppercase(),
                    value: json!(v),
                })
                .collect(),
        );
        f
    }

    #[test]
    fn v1_json_round_trips_and_defaults_apply() {
        let v1 = json!({
            "id": "abc", "orgId": "GLOBAL", "name": "GitHub Repository Workflow",
            "description": "Pick a repo", "linkedWorkflow": "github_repo",
            "formSchema": {"fields": [
                {"name": "token", "label": "Token", "type": "text", "required": true,
                 "validation": {"pattern": "gh[a-z]_.*", "min": 4, "max": 100},
                 "unknownProperty": 1},
                {"name": "repo", "label": "Repo", "type": "select",
                 "dataProvider": "get_github_repos",
                 "dataProviderInputs": {"token": {"mode": "fieldRef", "fieldName": "token"},
                                        "org": {"mode": "static", "value": "acme"}}},
                {"name": "intro", "type": "markdown", "content": "# Hello"},
                {"name": "upload", "label": "File", "type": "file",
                 "allowedTypes": ["image/*"], "maxSizeMB": 5, "multiple": false}
            ]},
            "isGlobal": true, "createdBy": "me",
            "createdAt": "2025-01-02T03:04:05.123456", "updatedAt": "2025-01-02T03:04:05Z",
            "launchWorkflowId": "launch", "allowedQueryParams": ["ticket"],
            "defaultLaunchParams": {"x": 1}
        });
        let f: Form = serde_json::from_value(v1).unwrap();
        assert!(f.is_active, "isActive defaults to true");
        assert_eq!(f.access_level, AccessLevel::RoleBased);
        assert_eq!(f.form_schema.fields[3].max_size_mb, Some(5));
        assert_eq!(f.check(), Ok(()));

        let out = serde_json::to_value(&f).unwrap();
        assert_eq!(out["createdAt"], "2025-01-02T03:04:05.123456Z");
        assert_eq!(out["accessLevel"], "role_based");
        assert_eq!(
            out["formSchema"]["fields"][0]["validation"]["min"],
            json!(4)
        );
        assert_eq!(out["formSchema"]["fields"][3]["maxSizeMB"], 5);
        assert_eq!(
            out["formSchema"]["fields"][1]["dataProviderInputs"]["token"]["mode"],
            "fieldRef"
        );
        assert!(out["formSchema"].get("steps").is_none());
        assert!(
            out["formSchema"]["fields"][0]
                .get("unknownProperty")
                .is_none()
        );
        let again: Form = serde_json::from_value(out).unwrap();
        assert_eq!(again, f);
    }

    #[test]
    fn all_field_types_use_their_v1_names() {
        for (t, s) in [
            (FieldType::Text, "text"),
            (FieldType::Multiselect, "multiselect"),
            (FieldType::Datetime, "datetime"),
            (FieldType::Html, "html"),
            (FieldType::File, "file"),
        ] {
            assert_eq!(serde_json::to_value(t).unwrap(), json!(s));
        }
        assert!(serde_json::from_value::<FieldType>(json!("string")).is_err());
        assert_eq!(
            serde_json::to_value(AccessLevel::Authenticated).unwrap(),
            json!("authenticated")
        );
    }

    #[test]
    fn name_and_linked_workflow_are_checked() {
        let mut f = form(vec![]);
        assert_eq!(f.check(), Ok(()), "an empty flat form is valid");
        f.name = "  ".into();
        f.linked_workflow = String::new();
        assert_eq!(issues(&f), ["name", "linkedWorkflow"]);
        f.name = "é".repeat(200);
        f.linked_workflow = "w".into();
        assert_eq!(f.check(), Ok(()), "200 characters (not bytes) are fine");
        f.name.push('x');
        assert_eq!(issues(&f), ["name"]);
    }

    #[test]
    fn field_count_names_and_labels_are_checked() {
        let fields: Vec<_> = (0..51)
            .map(|i| field(&format!("f{i}"), FieldType::Text))
            .collect();
        assert_eq!(issues(&form(fields)), ["formSchema.fields"]);

        let f = form(vec![
            field("a", FieldType::Text),
            field("a", FieldType::Number),
            field("1bad", FieldType::Text),
            field("has-dash", FieldType::Text),
            field("", FieldType::Text),
            FormField::new("nolabel", FieldType::Email),
            FormField::new("md", FieldType::Markdown),
            FormField::new("_ok_1", FieldType::Html),
        ]);
        assert_eq!(
            issues(&f),
            [
                "formSchema.fields[1].name",
                "formSchema.fields[2].name",
                "formSchema.fields[3].name",
                "formSchema.fields[4].name",
                "formSchema.fields[4].label",
                "formSchema.fields[5].label",
                "formSchema.fields[6].content",
                "formSchema.fields[7].content",
            ]
        );
    }

    #[test]
    fn option_fields_need_options_or_a_provider() {
        let mut provider = field("p", FieldType::Multiselect);
        provider.data_provider = Some("get_users".into());
        let mut empty = field("e", FieldType::Select);
        empty.options = Some(vec![]);
        let mut dup = select("d", &["a", "b", "a"]);
        dup.field_type = FieldType::Radio;
        let f = form(vec![
            select("ok", &["a"]),
            provider,
            field("radio", FieldType::Radio),
            empty,
            dup,
        ]);
        assert_eq!(
            issues(&f),
            [
                "formSchema.fields[2].options",
                "formSchema.fields[3].options",
                "formSchema.fields[4].options[2].value",
            ]
        );
    }

    #[test]
    fn provider_inputs_need_a_provider_and_their_mode_member() {
        let input = |v: Value| -> DataProviderInput { serde_json::from_value(v).unwrap() };
        let mut without = field("w", FieldType::Text);
        without.data_provider_inputs = Some(BTreeMap::from([(
            "a".into(),
            input(json!({"mode": "static", "value": 1})),
        )]));
        let mut with = select("s", &["x"]);
        with.data_provider = Some("prov".into());
        with.data_provider_inputs = Some(BTreeMap::from([
            (
                "ok_static".into(),
                input(json!({"mode": "static", "value": "v"})),
            ),
            (
                "ok_ref".into(),
                input(json!({"mode": "fieldRef", "fieldName": "w"})),
            ),
            (
                "ok_expr".into(),
                input(json!({"mode": "expression", "expression": "context.field.w == 'x'"})),
            ),
            ("no_value".into(), input(json!({"mode": "static"}))),
            (
                "both".into(),
                input(json!({"mode": "static", "value": 1, "fieldName": "w"})),
            ),
            (
                "bad_ref".into(),
                input(json!({"mode": "fieldRef", "fieldName": "nope"})),
            ),
            ("no_expr".into(), input(json!({"mode": "expression"}))),
            (
                "bad_expr".into(),
                input(json!({"mode": "expression", "expression": "context.field.w =="})),
            ),
        ]));
        let f = form(vec![without, with]);
        let p = "formSchema.fields[1].dataProviderInputs";
        assert_eq!(
            issues(&f),
            [
                "formSchema.fields[0].dataProviderInputs".to_owned(),
                format!("{p}.bad_expr.expression"),
                format!("{p}.bad_ref.fieldName"),
                format!("{p}.both.fieldName"),
                format!("{p}.no_expr"),
                format!("{p}.no_value"),
            ]
        );
        let input_mode: DataProviderInput =
            serde_json::from_value(json!({"mode": "fieldRef", "fieldName": "x"})).unwrap();
        assert_eq!(input_mode.mode, ProviderInputMode::FieldRef);
    }

    #[test]
    fn validation_patterns_bounds_and_expressions_are_checked() {
        let with_validation = |name: &str, v: Value| {
            let mut f = field(name, FieldType::Text);
            f.validation = Some(serde_json::from_value(v).unwrap());
            f
        };
        let mut hidden = field("hidden", FieldType::Text);
        hidden.visibility_expression = Some("context.field.a ==".into());
        let mut shown = field("shown", FieldType::Text);
        shown.visibility_expression = Some("context.workflow.user_exists === true".into());
        let mut file = field("file", FieldType::File);
        file.max_size_mb = Some(0);
        let f = form(vec![
            with_validation("a", json!({"pattern": "[a-z]+", "min": 1, "max": 3})),
            with_validation("b", json!({"pattern": "(unclosed"})),
            with_validation("c", json!({"pattern": "(?=lookahead)"})),
            with_validation("d", json!({"pattern": "a".repeat(501)})),
            with_validation("e", json!({"min": 5, "max": 4})),
            hidden,
            shown,
            file,
        ]);
        let all = f.check().unwrap_err();
        let paths: Vec<_> = all.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            paths,
            [
                "formSchema.fields[1].validation.pattern",
                "formSchema.fields[2].validation.pattern",
                "formSchema.fields[3].validation.pattern",
                "formSchema.fields[4].validation.min",
                "formSchema.fields[5].visibilityExpression",
                "formSchema.fields[7].maxSizeMB",
            ]
        );
        assert!(
            all[0]
                .message
                .starts_with("is not a valid regular expression"),
            "{}",
            all[0]
        );
        assert!(!all[0].message.contains('\n'));
        assert!(all[2].message.contains("500"));
    }

    #[test]
    fn patterns_are_anchored_and_bounded() {
        let re = compile_pattern("[0-9]+|x").unwrap();
        assert!(re.is_match("123") && re.is_match("x"));
        assert!(!re.is_match("a123") && !re.is_match("123a") && !re.is_match("xx"));
        assert_eq!(
            compile_pattern(r"(?:\w{100}){100}").unwrap_err(),
            "is too complex"
        );
    }

    #[test]
    fn steps_rules() {
        let s = stepped(vec![
            vec![field("a", FieldType::Text)],
            vec![field("b", FieldType::Text), select("c", &["1"])],
        ]);
        assert_eq!(s.check(), Ok(()));
        let names: Vec<_> = s
            .form_schema
            .all_fields()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(s.form_schema.step_count(), 2);
        assert_eq!(s.form_schema.step_fields(1).unwrap().len(), 2);
        assert!(s.form_schema.step_fields(2).is_none());
        assert_eq!(
            s.form_schema.field("c").unwrap().field_type,
            FieldType::Select
        );

        let out = serde_json::to_value(&s).unwrap();
        assert_eq!(out["formSchema"]["fields"], json!([]));
        assert_eq!(out["formSchema"]["steps"][1]["fields"][0]["name"], "b");

        let flat = form(vec![field("a", FieldType::Text)]);
        assert_eq!(flat.form_schema.step_fields(0).unwrap().len(), 1);
        assert!(flat.form_schema.step_fields(1).is_none());
        assert_eq!(flat.form_schema.step_count(), 1);

        let mut both = stepped(vec![vec![field("a", FieldType::Text)]]);
        both.form_schema.fields.push(field("z", FieldType::Text));
        assert_eq!(issues(&both), ["formSchema"]);

        assert_eq!(issues(&stepped(vec![])), ["formSchema.steps"]);

        let mut untitled = stepped(vec![vec![field("a", FieldType::Text)], vec![]]);
        if let Some(steps) = untitled.form_schema.steps.as_mut() {
            steps[0].title = " ".into();
        }
        assert_eq!(
            issues(&untitled),
            ["formSchema.steps[0].title", "formSchema.steps[1].fields"]
        );

        let dup = stepped(vec![
            vec![field("a", FieldType::Text)],
            vec![field("a", FieldType::Text)],
        ]);
        assert_eq!(issues(&dup), ["formSchema.steps[1].fields[0].name"]);

        let many = stepped(
            (0..6)
                .map(|s| {
                    (0..9)
                        .map(|i| field(&format!("f{s}_{i}"), FieldType::Text))
                        .collect()
                })
                .collect(),
        );
        assert_eq!(issues(&many), ["formSchema.steps"]);

        // A fieldRef may name a field of another step.
        let mut dependent = select("d", &["x"]);
        dependent.data_provider = Some("p".into());
        dependent.data_provider_inputs = Some(BTreeMap::from([(
            "q".into(),
            DataProviderInput {
                mode: ProviderInputMode::FieldRef,
                value: None,
                field_name: Some("a".into()),
                expression: None,
            },
        )]));
        let cross = stepped(vec![vec![field("a", FieldType::Text)], vec![dependent]]);
        assert_eq!(cross.check(), Ok(()));
    }

    #[test]
    fn input_becomes_a_form_and_updates_keep_server_properties() {
        let input: FormInput = serde_json::from_value(json!({
            "name": "New", "linkedWorkflow": "w",
            "formSchema": {"fields": [{"name": "a", "label": "A", "type": "text"}]}
        }))
        .unwrap();
        assert_eq!(input.check(), Ok(()));
        let created = OffsetDateTime::UNIX_EPOCH;
        let mut f = input
            .clone()
            .into_form("id1".into(), "org-1".into(), "me".into(), created);
        assert!(f.is_active);
        assert!(!f.is_global);
        assert_eq!(f.access_level, AccessLevel::RoleBased);
        let g = input
            .clone()
            .into_form("id2".into(), GLOBAL_ORG.into(), "me".into(), created);
        assert!(g.is_global);

        let later = created + time::Duration::hours(1);
        let mut update = input;
        update.name = "Renamed".into();
        update.is_active = Some(false);
        update.org_id = Some("other".into());
        f.apply(update, later);
        assert_eq!(
            (f.id.as_str(), f.org_id.as_str(), f.created_by.as_str()),
            ("id1", "org-1", "me")
        );
        assert_eq!((f.created_at, f.updated_at), (created, later));
        assert_eq!(f.name, "Renamed");
        assert!(!f.is_active);

        let bad: FormInput = serde_json::from_value(json!({
            "name": "", "linkedWorkflow": "w", "formSchema": {"fields": []}
        }))
        .unwrap();
        assert_eq!(bad.check().unwrap_err()[0].field, "name");
    }

    #[test]
    fn timestamps_parse_leniently() {
        let t = |s: &str| parse_timestamp(s).map(|t| t.unix_timestamp());
        assert_eq!(t("1970-01-01T00:01:00Z"), Some(60));
        assert_eq!(t("1970-01-01T01:01:00+01:00"), Some(60));
        assert_eq!(t("1970-01-01T00:01"), Some(60));
        assert_eq!(t("1970-01-01T00:01:00"), Some(60));
        assert_eq!(t("1970-01-01T00:01:00.5"), Some(60));
        assert_eq!(t("1970-01-02"), Some(86_400));
        assert_eq!(t("yesterday"), None);
        assert_eq!(t("1970-13-01T00:00"), None);
    }

    #[test]
    fn json_schema_is_generated() {
        let schema = schemars::schema_for!(Form);
        let text = serde_json::to_string(&schema).unwrap();
        assert!(text.contains("formSchema") && text.contains("maxSizeMB"));
    }
}
