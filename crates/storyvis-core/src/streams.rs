//! The random streams of a run: every stream (an iteration's batches, its noise, the standing
//! passes) is seeded by mixing the run's seed with what the stream is for.

/// Mixes seeds into one (SplitMix64 finaliser).
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Salts the seed of the standing passes' noise and data (`family::standing_batches`).
pub const STANDING_SALT: u64 = 0x57A4D;
