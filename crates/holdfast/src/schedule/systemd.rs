//! A [`Plan`] as systemd units: per job a `Type=oneshot` service (idle I/O
//! class, `Nice=10`, its steps under the plan's `flock`) and a timer
//! (`Persistent=true`, so a night missed while the machine was off runs at
//! boot), plus, with `--notify` targets, the template service that
//! `OnFailure=` starts to tell them.

use super::quote;
use super::{Job, Plan};

/// A unit file: its name and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    pub name: String,
    pub text: String,
}

/// Every unit of the plan: services and timers of its jobs, then the
/// failure notification template when there are targets.
pub fn units(plan: &Plan) -> Vec<UnitFile> {
    let mut files = Vec::new();
    for job in plan.jobs() {
        files.push(service(plan, &job));
        files.push(timer(plan, &job));
    }
    if !plan.notify.is_empty() {
        files.push(notify_failure(plan));
    }
    files
}

/// `holdfast-<name>-notify-failure@.service`.
pub fn notify_failure_name(plan: &Plan) -> String {
    format!("holdfast-{}-notify-failure@.service", plan.name)
}

/// The header every file starts with.
fn written_by(plan: &Plan) -> String {
    format!(
        "# Written by `holdfast schedule` for profile {}; `holdfast schedule --force` rewrites it.\n",
        plan.profile
    )
}

fn service(plan: &Plan, job: &Job) -> UnitFile {
    let stem = plan.unit_stem(job.name);
    let mut t = written_by(plan);
    t.push_str("[Unit]\n");
    t.push_str(&format!("Description={}\n", job.description));
    t.push_str("Documentation=man:holdfast-schedule(1)\n");
    if !plan.user {
        // The database may be local; a repository may be remote.
        t.push_str("Wants=network-online.target\n");
        t.push_str("After=network-online.target postgresql.service\n");
    }
    if !plan.notify.is_empty() {
        // %N: this unit's name without ".service", the template's instance.
        t.push_str(&format!(
            "OnFailure={}\n",
            notify_failure_name(plan).replace("@.", "@%N.")
        ));
    }
    t.push_str("\n[Service]\nType=oneshot\n");
    for step in &job.steps {
        t.push_str(&format!(
            "ExecStart={}\n",
            quote::systemd_words(&plan.locked(step.argv()))
        ));
    }
    t.push_str("Nice=10\nIOSchedulingClass=idle\nUMask=0077\n");
    UnitFile {
        name: format!("{stem}.service"),
        text: t,
    }
}

fn timer(plan: &Plan, job: &Job) -> UnitFile {
    let stem = plan.unit_stem(job.name);
    let mut t = written_by(plan);
    t.push_str("[Unit]\n");
    t.push_str(&format!("Description=Timer: {}\n", job.description));
    t.push_str("\n[Timer]\n");
    t.push_str(&format!("OnCalendar={}\n", job.when.on_calendar()));
    t.push_str(&format!(
        "RandomizedDelaySec={}\n",
        job.when.randomized_delay()
    ));
    t.push_str("Persistent=true\n");
    t.push_str(&format!("Unit={stem}.service\n"));
    t.push_str("\n[Install]\nWantedBy=timers.target\n");
    UnitFile {
        name: format!("{stem}.timer"),
        text: t,
    }
}

fn notify_failure(plan: &Plan) -> UnitFile {
    let mut t = written_by(plan);
    t.push_str("[Unit]\n");
    t.push_str(&format!(
        "Description=holdfast {}: tell the --notify targets that %i failed\n",
        plan.name
    ));
    t.push_str("\n[Service]\nType=oneshot\n");
    // %i: the failed unit; `holdfast notify` adds the result systemd gives
    // it (MONITOR_SERVICE_RESULT, MONITOR_EXIT_STATUS).
    t.push_str(&format!(
        "ExecStart={} %i\n",
        quote::systemd_words(&plan.notify_failure_argv())
    ));
    UnitFile {
        name: notify_failure_name(plan),
        text: t,
    }
}
