//! The local policy file and the CA's configuration file (TOML, validated on
//! load): any text is a policy or an error naming file, line and key.
#![no_main]

use std::path::Path;

use autoenroll::ca::config::CaConfig;
use autoenroll::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/autoenroll/policy.toml");
    if let Ok(policy) = Policy::parse(text, path) {
        let _ = policy.template("Machine");
        // Whatever schedule the validator accepts, the worker can compute
        // its next run (an accepted interval once overflowed the date).
        let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let _ = autoenroll::worker::next_scheduled(&policy, now, policy.schedule.jitter);
    }
    let _ = CaConfig::parse(text, Path::new("/etc/autoenroll/ca.toml"));
});
