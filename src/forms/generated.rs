//! The form Bifrost generates for a workflow from its parameters
//! (`GET /api/workflows/{name}/form`), so every workflow can be run from a form without one
//! being built.
//!
//! May depend on: `model` and `bifrost-engine`'s metadata types. Pure: no clock, no I/O, so the
//! same workflow always yields the same form.
//!
//! Mapping (bifrost-v1.md §1.9, the SPA's "Execute workflow" renderer, made explicit):
//! `string` → text, `email` → email, `int` → number with `validation.integer`, `float` →
//! number, `bool` → checkbox (default `false`, so an unticked box still submits a value),
//! `json` → textarea, `list` → textarea (multiselect when the parameter has options),
//! `datetime`/`date` → datetime; a parameter with `options` or a `dataProvider` is a select
//! (multiselect for `list`). `validation`'s `pattern`/`min`/`max`/`message` carry over.
//! Textareas of `json`/`list` parameters submit text: converting it is the run path's job
//! (`executions::input` with string coercion).

use bifrost_engine::{ParameterInfo, WorkflowInfo};
use time::OffsetDateTime;

use super::model::{
    AccessLevel, FieldOption, FieldType, FieldValidation, Form, FormField, FormSchema, GLOBAL_ORG,
    MAX_NAME_CHARS,
};

/// `createdBy` of generated forms.
pub const GENERATED_BY: &str = "system";

/// The id of `workflow`'s generated form.
pub fn generated_form_id(workflow: &str) -> String {
    format!("workflow:{workflow}")
}

/// The auto-generated form of `workflow`: global, active, for any signed-in user (the HTTP
/// layer still decides who may run the workflow), one field per parameter in declaration
/// order. Its timestamps are the Unix epoch: the form is computed, never stored.
pub fn form_for_workflow(workflow: &WorkflowInfo) -> Form {
    let title = if workflow.description.trim().is_empty() {
        &workflow.name
    } else {
        workflow.description.trim()
    };
    Form {
        id: generated_form_id(&workflow.name),
        org_id: GLOBAL_ORG.to_owned(),
        name: title.chars().take(MAX_NAME_CHARS).collect(),
        description: None,
        linked_workflow: workflow.name.clone(),
        form_schema: FormSchema {
            fields: workflow
                .parameters
                .iter()
                .map(field_for_parameter)
                .collect(),
            steps: None,
        },
        is_active: true,
        is_global: true,
        access_level: AccessLevel::Authenticated,
        created_by: GENERATED_BY.to_owned(),
        created_at: OffsetDateTime::UNIX_EPOCH,
        updated_at: OffsetDateTime::UNIX_EPOCH,
        launch_workflow_id: None,
        allowed_query_params: None,
        default_launch_params: None,
    }
}

/// The form field of one workflow parameter.
pub fn field_for_parameter(p: &ParameterInfo) -> FormField {
    let options: Option<Vec<FieldOption>> = p.options.as_ref().filter(|o| !o.is_empty()).map(|o| {
        o.iter()
            .map(|o| FieldOption {
                label: o.label.clone(),
                value: o.value.clone(),
            })
            .collect()
    });
    let chooses = options.is_some() || p.data_provider.is_some();
    let field_type = match p.kind.as_str() {
        "list" if chooses => FieldType::Multiselect,
        _ if chooses => FieldType::Select,
        "email" => FieldType::Email,
        "int" | "float" => FieldType::Number,
        "bool" => FieldType::Checkbox,
        "json" | "list" => FieldType::Textarea,
        "datetime" | "date" => FieldType::Datetime,
        _ => FieldType::Text,
    };

    // Only the conventional keys (pattern/min/max/message) mean anything; others are dropped.
    let mut validation = p
        .validation
        .clone()
        .and_then(|v| serde_json::from_value::<FieldValidation>(v).ok())
        .unwrap_or_default();
    if field_type == FieldType::Number && p.kind == "int" {
        validation.integer = Some(true);
    }
    // A malformed pattern would make the whole form unusable; a form without it still works.
    if let Some(pattern) = &validation.pattern
        && super::model::compile_pattern(pattern).is_err()
    {
        validation.pattern = None;
    }
    if let (Some(min), Some(max)) = (validation.min, validation.max)
        && min > max
    {
        validation.min = None;
        validation.max = None;
    }
    let validation = (validation != FieldValidation::default()).then_some(validation);

    let default_value = match (&p.default_value, field_type) {
        (Some(v), _) if !v.is_null() => Some(v.clone()),
        (_, FieldType::Checkbox) => Some(serde_json::Value::Bool(false)),
        _ => None,
    };

    let mut field = FormField::new(p.name.clone(), field_type);
    field.label = Some(
        p.label
            .clone()
            .filter(|l| !l.trim().is_empty())
            .unwrap_or_else(|| default_label(&p.name)),
    );
    field.required = p.required;
    field.validation = validation;
    field.data_provider = p.data_provider.clone();
    field.default_value = default_value;
    field.help_text = p.help_text.clone();
    field.options = options;
    field
}

/// v1's default label: `name.replace('_', ' ').title()`.
fn default_label(name: &str) -> String {
    let mut label = String::with_capacity(name.len());
    let mut word_start = true;
    for c in name.chars() {
        let c = if c == '_' { ' ' } else { c };
        if c.is_alphabetic() {
            if word_start {
                label.extend(c.to_uppercase());
            } else {
                label.extend(c.to_lowercase());
            }
            word_start = false;
        } else {
            label.push(c);
            word_start = true;
        }
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forms::validate::Validator;
    use bifrost_engine::{ExecutionMode, ParameterOption};
    use serde_json::{Map, Value, json};
    use std::path::PathBuf;

    fn param(name: &str, kind: &str) -> ParameterInfo {
        ParameterInfo {
            name: name.into(),
            kind: kind.into(),
            label: None,
            required: false,
            validation: None,
            data_provider: None,
            default_value: None,
            help_text: None,
            options: None,
        }
    }

    fn workflow(description: &str, parameters: Vec<ParameterInfo>) -> WorkflowInfo {
        WorkflowInfo {
            name: "onboard_user".into(),
            description: description.into(),
            category: "General".into(),
            tags: vec![],
            execution_mode: ExecutionMode::Sync,
            timeout_seconds: 60,
            retry_policy: None,
            schedule: None,
            endpoint_enabled: false,
            allowed_methods: vec!["POST".into()],
            disable_global_key: false,
            public_endpoint: false,
            source: None,
            source_file_path: PathBuf::from("onboard.py"),
            parameters,
            parameters_inferred: false,
            module: "onboard".into(),
            function: "onboard_user".into(),
            line: 1,
            is_async: true,
        }
    }

    #[test]
    fn the_form_describes_the_workflow() {
        let form = form_for_workflow(&workflow("Onboard a new user", vec![]));
        assert_eq!(form.id, "workflow:onboard_user");
        assert_eq!(form.org_id, "GLOBAL");
        assert_eq!(form.name, "Onboard a new user");
        assert_eq!(form.linked_workflow, "onboard_user");
        assert_eq!(form.access_level, AccessLevel::Authenticated);
        assert!(form.is_active && form.is_global);
        assert_eq!(form.check(), Ok(()));

        assert_eq!(
            form_for_workflow(&workflow(" ", vec![])).name,
            "onboard_user"
        );
        let long = form_for_workflow(&workflow(&"d".repeat(300), vec![]));
        assert_eq!(long.name.chars().count(), 200);
        assert_eq!(long.check(), Ok(()));
    }

    #[test]
    fn parameter_kinds_map_to_field_types() {
        let kinds = [
            ("string", FieldType::Text),
            ("email", FieldType::Email),
            ("int", FieldType::Number),
            ("float", FieldType::Number),
            ("bool", FieldType::Checkbox),
            ("json", FieldType::Textarea),
            ("list", FieldType::Textarea),
            ("datetime", FieldType::Datetime),
            ("date", FieldType::Datetime),
            ("something_new", FieldType::Text),
        ];
        let params = kinds
            .iter()
            .map(|(k, _)| param(&format!("p_{k}"), k))
            .collect();
        let form = form_for_workflow(&workflow("w", params));
        assert_eq!(form.check(), Ok(()));
        for (field, (kind, expected)) in form.form_schema.fields.iter().zip(kinds) {
            assert_eq!(field.field_type, expected, "{kind}");
        }
        let fields = &form.form_schema.fields;
        assert_eq!(
            fields[2].validation.as_ref().and_then(|v| v.integer),
            Some(true)
        );
        assert_eq!(fields[3].validation, None, "float: no integer rule");
        assert_eq!(
            fields[4].default_value,
            Some(json!(false)),
            "checkboxes default to false"
        );
    }

    #[test]
    fn parameter_details_carry_over() {
        let mut email = param("manager_email", "email");
        email.required = true;
        email.help_text = Some("Who approves".into());
        email.validation =
            Some(json!({"pattern": ".*@acme\\.com", "message": "Use an acme address", "other": 1}));
        let mut count = param("seat_count", "int");
        count.label = Some("Seats".into());
        count.default_value = Some(json!(1));
        count.validation = Some(json!({"min": 1, "max": 10}));
        let mut size = param("size", "string");
        size.options = Some(vec![
            ParameterOption {
                label: "Small".into(),
                value: json!("s"),
            },
            ParameterOption {
                label: "Large".into(),
                value: json!("l"),
            },
        ]);
        let mut user = param("user", "string");
        user.data_provider = Some("get_users".into());
        let mut groups = param("groups", "list");
        groups.data_provider = Some("get_groups".into());
        let mut bad = param("bad_rules", "string");
        bad.validation = Some(json!({"pattern": "(?<=x)", "min": 5, "max": 1}));
        let mut flag = param("notify", "bool");
        flag.default_value = Some(json!(true));

        let form = form_for_workflow(&workflow(
            "w",
            vec![email, count, size, user, groups, bad, flag],
        ));
        assert_eq!(form.check(), Ok(()));
        let f = &form.form_schema.fields;

        assert_eq!(f[0].label.as_deref(), Some("Manager Email"));
        assert!(f[0].required);
        assert_eq!(f[0].help_text.as_deref(), Some("Who approves"));
        let rules = f[0].validation.as_ref().unwrap();
        assert_eq!(rules.pattern.as_deref(), Some(".*@acme\\.com"));
        assert_eq!(rules.message.as_deref(), Some("Use an acme address"));

        assert_eq!(f[1].label.as_deref(), Some("Seats"));
        assert_eq!(f[1].default_value, Some(json!(1)));
        let rules = f[1].validation.as_ref().unwrap();
        assert_eq!(
            (rules.min, rules.max, rules.integer),
            (Some(1.0), Some(10.0), Some(true))
        );

        assert_eq!(f[2].field_type, FieldType::Select);
        assert_eq!(f[2].options.as_ref().unwrap()[1].value, json!("l"));
        assert_eq!(
            (f[3].field_type, f[3].data_provider.as_deref()),
            (FieldType::Select, Some("get_users"))
        );
        assert_eq!(
            (f[4].field_type, f[4].data_provider.as_deref()),
            (FieldType::Multiselect, Some("get_groups"))
        );
        assert_eq!(
            f[5].validation, None,
            "unusable rules are dropped, not fatal"
        );
        assert_eq!(f[6].default_value, Some(json!(true)));

        let json = serde_json::to_value(&form).unwrap();
        assert_eq!(
            json["formSchema"]["fields"][1]["validation"],
            json!({"min": 1, "max": 10, "integer": true})
        );
    }

    #[test]
    fn generated_forms_validate_submissions() {
        let mut count = param("count", "int");
        count.required = true;
        let form = form_for_workflow(&workflow("w", vec![count, param("dry_run", "bool")]));
        let v = Validator::for_form(&form).unwrap();
        let run = |values: Value| {
            let Value::Object(values) = values else {
                unreachable!()
            };
            v.validate(&values, &Value::Null, &Map::new())
        };
        assert_eq!(
            Value::Object(run(json!({"count": "3"})).unwrap()),
            json!({"count": 3, "dry_run": false})
        );
        assert_eq!(
            run(json!({"count": 2.5})).unwrap_err()[0].message,
            "must be a whole number"
        );
        assert_eq!(run(json!({})).unwrap_err()[0].field, "count");
    }

    #[test]
    fn default_labels_follow_python_title() {
        assert_eq!(default_label("first_name"), "First Name");
        assert_eq!(default_label("userID_2fa"), "Userid 2Fa");
        assert_eq!(default_label("_x"), " X");
    }
}
