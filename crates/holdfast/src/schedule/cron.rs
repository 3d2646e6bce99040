//! A [`Plan`] as a crontab, for machines without systemd: a line per job,
//! its steps joined by `&&` under the plan's `flock`, their output appended
//! to `<log_dir>/holdfast-<name>-<job>.out`, and with `--notify` targets
//! `|| holdfast notify --failed ...` when a step fails.

use super::quote;
use super::{Job, Plan};

/// The crontab: `/etc/cron.d` syntax (with the user field `root`), or a
/// user's crontab without it.
pub fn crontab(plan: &Plan) -> String {
    let mut t = format!(
        "# Written by `holdfast schedule --cron` for profile {}; `holdfast schedule --cron --force` rewrites it.\n",
        plan.profile
    );
    t.push_str(
        "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
    );
    for job in plan.jobs() {
        t.push_str(&format!("# {}\n", job.description));
        t.push_str(&line(plan, &job));
        t.push('\n');
    }
    t
}

/// The job's line: time fields, user (system crontab), command.
pub fn line(plan: &Plan, job: &Job) -> String {
    let out = quote::sh(
        &plan
            .log_dir
            .join(format!("{}.out", plan.unit_stem(job.name)))
            .display()
            .to_string(),
    );
    let steps: Vec<String> = job
        .steps
        .iter()
        .map(|step| {
            format!(
                "{} >>{out} 2>&1",
                quote::sh_words(&plan.locked(step.argv()))
            )
        })
        .collect();
    let mut command = steps.join(" && ");
    if !plan.notify.is_empty() {
        let mut notify = plan.notify_failure_argv();
        notify.push(plan.unit_stem(job.name));
        command.push_str(&format!(" || {} >>{out} 2>&1", quote::sh_words(&notify)));
    }
    let user = if plan.user { "" } else { "root " };
    format!("{} {user}{}", job.when.cron_fields(), quote::cron(&command))
}
