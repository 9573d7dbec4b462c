//! Range checks of configuration values, with errors that name the key and the allowed range.

use anyhow::{bail, Result};

/// An error unless lo ≤ v ≤ hi, naming the key.
pub fn range<T: PartialOrd + std::fmt::Display>(name: &str, v: T, lo: T, hi: T) -> Result<()> {
    if v < lo || v > hi {
        bail!("config: {name} = {v} is out of range ({lo} to {hi})");
    }
    Ok(())
}

/// Adam's settings, checked: each learning rate in [1e-7, 1], β1 and β2 in [0, 1).
pub fn check_adam(rates: &[(&str, f64)], beta1: f64, beta2: f64) -> Result<()> {
    for &(name, lr) in rates {
        range(name, lr, 1e-7, 1.0)?;
    }
    range("beta1", beta1, 0.0, 0.999999)?;
    range("beta2", beta2, 0.0, 0.999999)
}
