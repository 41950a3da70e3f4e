//! Forms kept as `*.form.json` files in the workspace: imported at start and re-imported while
//! serving (files changed by a git pull show up without a restart).
//!
//! Depends on the form store only; no HTTP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::store::{FormStore, ImportReport};

/// How often the workspace's form files are imported again while serving.
pub const FORM_IMPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Imports the workspace's form files, logging what happened (start-up).
pub async fn import_forms(forms: &FormStore, workspace: &Path) {
    match forms.import_workspace(workspace).await {
        Ok(report) => log_import(&report, true),
        Err(e) => tracing::error!(error = %e, "could not import the workspace's form files"),
    }
}

fn log_import(report: &ImportReport, errors: bool) {
    if !report.imported.is_empty() || !report.removed.is_empty() {
        tracing::info!(
            imported = ?report.imported,
            removed = ?report.removed,
            unchanged = report.unchanged,
            "workspace forms imported"
        );
    }
    if errors {
        for issue in &report.errors {
            tracing::warn!(file = %issue.file, error = %issue.message, "workspace form file not imported");
        }
    }
}

/// Re-imports the workspace's form files every [`FORM_IMPORT_INTERVAL`] (files changed by a git
/// pull show up without a restart). File errors are logged when they change.
pub async fn watch_workspace_forms(forms: FormStore, workspace: PathBuf) {
    let mut tick = tokio::time::interval(FORM_IMPORT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last_errors = None;
    loop {
        tick.tick().await;
        match forms.import_workspace(&workspace).await {
            Ok(report) => {
                let changed = last_errors.as_ref() != Some(&report.errors);
                log_import(&report, changed);
                last_errors = Some(report.errors);
            }
            Err(e) => tracing::warn!(error = %e, "workspace form import failed"),
        }
    }
}
