//! Shell-style `KEY="value"` configuration files (oVirt's `*.conf`): reading them
//! as the application does, and changing keys in place.
