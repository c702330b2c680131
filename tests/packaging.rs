//! The packaged files agree with the code: `packaging/config.toml` (installed
//! as /etc/oxidizr-arch/config.toml) is exactly the built-in defaults.

use oxidizr_arch::model::config::Config;

#[test]
fn packaged_config_equals_builtin_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/config.toml");
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(Config::from_toml(&text).unwrap(), Config::default());
}
