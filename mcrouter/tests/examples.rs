//! Every example config in `mcrouter/examples/` loads.

use mcrouter::config::Config;
use mcrouter::destination::Registry;

#[test]
fn example_configs_load() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) == Some("json") {
            if let Err(e) = Config::load(&path, &Registry::default()) {
                panic!("{e}");
            }
            n += 1;
        }
    }
    assert!(n >= 5, "found {n} example configs");
}
