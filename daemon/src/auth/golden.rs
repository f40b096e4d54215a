//! The golden `auth.json` files of `tests/data/`, for the unit tests of this module.

pub const APIKEY: &[u8] = include_bytes!("../../../tests/data/auth-apikey.json");
pub const CHATGPT: &[u8] = include_bytes!("../../../tests/data/auth-chatgpt.json");
pub const DEVICE: &[u8] = include_bytes!("../../../tests/data/auth-chatgpt-device.json");
pub const LEGACY: &[u8] = include_bytes!("../../../tests/data/auth-legacy.json");
pub const LEGACY_APIKEY: &[u8] = include_bytes!("../../../tests/data/auth-legacy-apikey-with-tokens.json");
pub const MINIMAL: &[u8] = include_bytes!("../../../tests/data/auth-minimal.json");
pub const TRUNCATED: &[u8] = include_bytes!("../../../tests/data/corrupt-truncated.json");
pub const EMPTY_LAST_REFRESH: &[u8] = include_bytes!("../../../tests/data/corrupt-empty-last-refresh.json");
pub const BAD_ID_TOKEN: &[u8] = include_bytes!("../../../tests/data/corrupt-bad-id-token.json");
