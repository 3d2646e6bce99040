//! User and group names for tar headers. GNU tar records both the numeric ids
//! and the names, and when extracting as root it prefers the names, so that a
//! file owned by `postgres` stays owned by `postgres` on a host where that user
//! has another uid. These lookups let the `files` member do the same.

use std::ffi::{CStr, CString};

/// The name of user `uid` on this host.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid out-parameter; getpwuid_r writes
    // only into it and `buf`, whose length is passed, and sets `found` to
    // point at `pwd` on success or to null.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found);
        if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        CStr::from_ptr(pwd.pw_name)
            .to_str()
            .ok()
            .map(str::to_string)
    }
}

/// The name of group `gid` on this host.
pub fn group_name(gid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: as in `user_name`, with getgrgid_r and a group out-parameter.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut found);
        if rc != 0 || found.is_null() || grp.gr_name.is_null() {
            return None;
        }
        CStr::from_ptr(grp.gr_name)
            .to_str()
            .ok()
            .map(str::to_string)
    }
}

/// The uid of user `name` on this host.
pub fn uid_of(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: as in `user_name`; `cname` is a valid NUL-terminated string.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        );
        (rc == 0 && !found.is_null()).then_some(pwd.pw_uid)
    }
}

/// The gid of group `name` on this host.
pub fn gid_of(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: as in `group_name`; `cname` is a valid NUL-terminated string.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        );
        (rc == 0 && !found.is_null()).then_some(grp.gr_gid)
    }
}

/// The owner to give an extracted entry: the header's user and group names
/// when they exist on this host, else its numeric ids (GNU tar's rule).
pub fn owner_for(header: &tar::Header) -> std::io::Result<(u32, u32)> {
    let by_name = |name: Option<&str>, lookup: fn(&str) -> Option<u32>| {
        name.filter(|n| !n.is_empty()).and_then(lookup)
    };
    let uid = match by_name(header.username().ok().flatten(), uid_of) {
        Some(uid) => uid,
        None => header.uid()? as u32,
    };
    let gid = match by_name(header.groupname().ok().flatten(), gid_of) {
        Some(gid) => gid,
        None => header.gid()? as u32,
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves_both_ways() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(group_name(0).as_deref(), Some("root"));
        assert_eq!(uid_of("root"), Some(0));
        assert_eq!(gid_of("root"), Some(0));
        assert_eq!(uid_of("no-such-user-holdfast"), None);
        assert_eq!(uid_of("bad\0name"), None);
    }

    #[test]
    fn names_win_over_numbers_when_they_exist() {
        let mut h = tar::Header::new_gnu();
        h.set_uid(4242);
        h.set_gid(4343);
        assert_eq!(owner_for(&h).unwrap(), (4242, 4343));
        h.set_username("root").unwrap();
        h.set_groupname("no-such-group-holdfast").unwrap();
        assert_eq!(owner_for(&h).unwrap(), (0, 4343));
    }
}
