//! The application's notification hook (oVirt: `LogEngineBackupEvent`), told
//! when a backup starts, finishes or fails.

use crate::log::Log;
use crate::pg::{self, ConnParams};
use crate::profile::{Component, Environment};
use crate::{Error, Result};

/// The application's notification hook (oVirt: `LogEngineBackupEvent`), sent
/// once per scope backed up. A failing notification is logged and warned
/// about, never fatal: the backup itself matters more than its bookkeeping.
pub(super) struct Notifier<'a> {
    env: &'a Environment,
    log: &'a Log,
    scopes: Vec<String>,
    params: Option<ConnParams>,
}

impl<'a> Notifier<'a> {
    pub fn new(env: &'a Environment, log: &'a Log, scopes: &[String]) -> Notifier<'a> {
        let params = env
            .profile
            .notify
            .as_ref()
            .and_then(|n| env.profile.database(&n.database))
            .filter(|db| env.condition_holds(db.enabled_if.as_ref()))
            .and_then(|db| env.database_params(db).ok().flatten());
        Notifier {
            env,
            log,
            scopes: scopes.to_vec(),
            params,
        }
    }

    pub fn send(&self, status: i32, event: &str) {
        let (Some(hook), Some(params)) = (&self.env.profile.notify, &self.params) else {
            return;
        };
        if let Some(c) = &hook.console {
            self.log.output(c);
        }
        if let Err(e) = self.try_send(hook, params, status, event) {
            self.log
                .warning(&format!("Failed notifying the application: {e}"));
        }
    }

    fn try_send(
        &self,
        hook: &crate::profile::NotifyHook,
        params: &ConnParams,
        status: i32,
        event: &str,
    ) -> Result<()> {
        let mut client = pg::connect(params)?;
        let log_path = self
            .log
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let fqdn = self.env.fqdn();
        for scope in &self.scopes {
            let notify_scope = match self.env.component(scope) {
                Some(Component::Database(d)) => d.notify_scope().to_string(),
                Some(Component::Sqlite(s)) => {
                    s.notify_scope.clone().unwrap_or_else(|| s.scope.clone())
                }
                _ => scope.clone(),
            };
            let message = hook
                .message
                .replace("{event}", event)
                .replace("{scope}", &notify_scope)
                .replace("{log}", &log_path);
            let values: Vec<Box<dyn postgres::types::ToSql + Sync>> = hook
                .params
                .iter()
                .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
                    match p.as_str() {
                        "scope" => Box::new(notify_scope.clone()),
                        "status" => Box::new(status),
                        "message" => Box::new(message.clone()),
                        "fqdn" => Box::new(fqdn.clone()),
                        _ => Box::new(log_path.clone()),
                    }
                })
                .collect();
            let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                values.iter().map(|b| b.as_ref()).collect();
            self.log.line(&format!(
                "Notifying {notify_scope}: status {status}, {event}"
            ));
            client
                .execute(hook.sql.as_str(), &refs)
                .map_err(|e| Error::postgres(pg::error_text(&e)))?;
        }
        Ok(())
    }
}
