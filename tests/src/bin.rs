//! [`bin_path`]: find the `codexd` and `codexctl` binaries built beside the running test.

use std::path::PathBuf;

/// The binary `name` in the target directory of the running test executable.
///
/// The test runs as `<target>/<profile>/deps/e2e-<hash>`; the binaries sit in `<target>/<profile>/`. The
/// directories above the executable are searched in turn, so other target layouts work too.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("cannot find the running test executable");
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    for dir in exe.ancestors().skip(1) {
        let candidate = dir.join(&file);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "the `{name}` binary was not found in any directory above {}: build it with `cargo build --workspace`",
        exe.display()
    );
}
