//! A configuration file: YAML with marks, the key tree (unknown and duplicate keys refused),
//! every scalar and its validation, `${VAR}` expansion. An accepted config must print (what
//! `check` does) without panicking. Seeds: the shipped configs.

#![no_main]

use std::collections::HashMap;

use dpop_gateway::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env: HashMap<String, String> = [(
        "DPOP_NONCE_SECRET".to_owned(),
        "0123456789abcdef0123456789abcdef".to_owned(),
    )]
    .into_iter()
    .collect();
    match Config::from_yaml_str(text, "<fuzz>", &env) {
        Ok(config) => {
            let _ = config.to_masked_yaml();
        }
        Err(e) => {
            // Every error names a position inside the text (1-based).
            assert!(e.line >= 1 && e.column >= 1, "{e}");
        }
    }
});
