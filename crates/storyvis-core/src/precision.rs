//! `--precision fp32|tf32|bf16`: how a model's arithmetic runs.
//!
//! * `fp32`: IEEE single precision throughout; TF32 is switched off for CUDA matrix products
//!   and cuDNN convolutions (PyTorch leaves it on for convolutions by default).
//! * `tf32`: TF32 tensor cores for CUDA matrix products and convolutions (Ampere and newer),
//!   everything else in fp32. CUDA only.
//! * `bf16`: autocast to bfloat16 for the forward passes (matrix products and convolutions
//!   in bf16, reductions and the losses in fp32), weights, gradients and optimiser state in
//!   fp32. Works on the CPU too: 12× slower than fp32 without bf16 hardware (AVX2), but 1.5–2×
//!   faster with it (AVX-512 bf16 / AMX; BENCHMARKS.md).
//!
//! And `--memory-format auto|standard|channels-last`: whether the convolution stacks take and
//! pass activations in the NHWC memory format (`channels_last`); `auto` picks it on the CPU,
//! where it was measured faster.
//!
//! The switches live in a small C++ file (`csrc/precision.cpp`) because tch 0.24 binds neither
//! the TF32 settings nor autocast's choice of type.

use anyhow::{bail, Result};
use std::ffi::{c_char, c_int};
use std::fmt;
use std::str::FromStr;
use tch::{Device, Tensor};
use torch_sys::C_tensor;

extern "C" {
    fn storyvis_set_tf32(on: c_int, err: *mut c_char, len: usize) -> c_int;
    fn storyvis_tf32(matmul: *mut c_int, conv: *mut c_int, err: *mut c_char, len: usize) -> c_int;
    fn storyvis_autocast_enter(
        device: c_int,
        was_enabled: *mut c_int,
        was_dtype: *mut c_int,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
    fn storyvis_autocast_exit(
        device: c_int,
        was_enabled: c_int,
        was_dtype: c_int,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
    fn storyvis_channels_last(
        x: *const C_tensor,
        out: *mut *mut C_tensor,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
    fn storyvis_is_channels_last(
        x: *const C_tensor,
        yes: *mut c_int,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
    fn storyvis_autocast_state(
        device: c_int,
        enabled: *mut c_int,
        bf16: *mut c_int,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
    fn storyvis_libtorch_config(
        config: *mut c_char,
        config_len: usize,
        path: *mut c_char,
        path_len: usize,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
    #[cfg(test)]
    fn storyvis_throw_unknown(err: *mut c_char, len: usize) -> c_int;
}

/// Calls one of the C functions with an error buffer; a libtorch exception becomes an error.
fn call(f: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<()> {
    let mut err = [0 as c_char; 512];
    if f(err.as_mut_ptr(), err.len()) != 0 {
        // SAFETY: the C side wrote a NUL-terminated message into the buffer.
        let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
        bail!("libtorch: {msg}");
    }
    Ok(())
}

/// Where and how a model runs: `--device`, `--precision` and `--memory-format` together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runtime {
    pub device: Device,
    pub precision: Precision,
    /// Convolutions in the channels-last (NHWC) memory format.
    pub channels_last: bool,
}

impl Runtime {
    /// The CPU in fp32, standard layout.
    pub fn cpu() -> Runtime {
        Runtime { device: Device::Cpu, precision: Precision::Fp32, channels_last: false }
    }
}

/// `--memory-format`: the layout of the convolution stacks' activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MemoryFormat {
    /// Channels-last on the CPU (a `storygan-small` iteration 6–17 % faster in side-by-side
    /// runs on 2 cores; BENCHMARKS.md), standard on CUDA (not yet measured there).
    #[default]
    Auto,
    /// NCHW.
    Standard,
    /// NHWC.
    ChannelsLast,
}

impl FromStr for MemoryFormat {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<MemoryFormat> {
        match s.trim() {
            "auto" => Ok(MemoryFormat::Auto),
            "standard" => Ok(MemoryFormat::Standard),
            "channels-last" => Ok(MemoryFormat::ChannelsLast),
            other => bail!("unknown memory format {other:?}: use auto, standard or channels-last"),
        }
    }
}

impl MemoryFormat {
    /// Whether convolutions on `device` run channels-last.
    pub fn channels_last(self, device: Device) -> bool {
        match self {
            MemoryFormat::Auto => device == Device::Cpu,
            MemoryFormat::Standard => false,
            MemoryFormat::ChannelsLast => true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Fp32,
    Tf32,
    Bf16,
}

impl FromStr for Precision {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Precision> {
        match s.trim() {
            "fp32" => Ok(Precision::Fp32),
            "tf32" => Ok(Precision::Tf32),
            "bf16" => Ok(Precision::Bf16),
            other => bail!("unknown precision {other:?}: use fp32, tf32 or bf16"),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
        })
    }
}

fn device_code(device: Device) -> c_int {
    match device {
        Device::Cpu => 0,
        _ => 1,
    }
}

impl Precision {
    /// Checks that `device` supports this precision and sets the process-wide TF32 switches
    /// (on for `tf32` only). Call once, before the model runs.
    pub fn apply(self, device: Device) -> Result<()> {
        if self == Precision::Tf32 && device == Device::Cpu {
            bail!("--precision tf32 needs a CUDA device (TF32 is a tensor-core format); on the CPU use fp32 or bf16");
        }
        set_tf32(self == Precision::Tf32)
    }

    /// Runs forward computations in this precision until the guard is dropped: autocast to
    /// bf16 on `device`'s type for `bf16`, nothing for the others. Drop it before a backward
    /// pass, as autocast's documentation asks.
    pub fn autocast(self, device: Device) -> Result<Autocast> {
        if self != Precision::Bf16 {
            return Ok(Autocast { restore: None });
        }
        let code = device_code(device);
        let (mut was_enabled, mut was_dtype) = (0, 0);
        // SAFETY: plain-int out-parameters and an error buffer owned by `call`.
        call(|err, len| unsafe {
            storyvis_autocast_enter(code, &mut was_enabled, &mut was_dtype, err, len)
        })?;
        Ok(Autocast { restore: Some((code, was_enabled, was_dtype)) })
    }
}

/// An autocast region; leaving it restores the state it found.
#[must_use = "autocast ends when the guard is dropped"]
pub struct Autocast {
    restore: Option<(c_int, c_int, c_int)>,
}

impl Drop for Autocast {
    fn drop(&mut self) {
        if let Some((code, enabled, dtype)) = self.restore.take() {
            // SAFETY: as in `Precision::autocast`; the values came from the matching enter.
            let left =
                call(|err, len| unsafe { storyvis_autocast_exit(code, enabled, dtype, err, len) });
            if let Err(e) = left {
                eprintln!("warning: leaving autocast: {e:#}");
            }
        }
    }
}

/// Switches TF32 on or off for CUDA matrix products and cuDNN convolutions.
pub fn set_tf32(on: bool) -> Result<()> {
    // SAFETY: an int argument and an error buffer owned by `call`.
    call(|err, len| unsafe { storyvis_set_tf32(c_int::from(on), err, len) })
}

/// Whether TF32 is on for CUDA (matrix products, convolutions).
pub fn tf32() -> Result<(bool, bool)> {
    let (mut matmul, mut conv) = (0, 0);
    // SAFETY: plain-int out-parameters and an error buffer owned by `call`.
    call(|err, len| unsafe { storyvis_tf32(&mut matmul, &mut conv, err, len) })?;
    Ok((matmul != 0, conv != 0))
}

/// Whether autocast is on for `device`'s type, and whether it casts to bfloat16.
pub fn autocast_state(device: Device) -> Result<(bool, bool)> {
    let (mut enabled, mut bf16) = (0, 0);
    // SAFETY: plain-int out-parameters and an error buffer owned by `call`.
    call(|err, len| unsafe {
        storyvis_autocast_state(device_code(device), &mut enabled, &mut bf16, err, len)
    })?;
    Ok((enabled != 0, bf16 != 0))
}

/// `x` [N, C, H, W] laid out channels-last (NHWC in memory, the same values and shape);
/// differentiable. An error if libtorch refuses (a tensor that is not 4-d).
pub fn f_channels_last(x: &Tensor) -> Result<Tensor> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: `x` outlives the call; on success the C side hands over a new at::Tensor, which
    // `Tensor::from_ptr` owns (and frees) from then on.
    call(|err, len| unsafe { storyvis_channels_last(x.as_ptr(), &mut out, err, len) })?;
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// `f_channels_last`, for forward passes: the layout only changes speed, so where libtorch
/// refuses, the values go on in the standard layout (with a warning, once).
pub fn channels_last(x: &Tensor) -> Tensor {
    f_channels_last(x).unwrap_or_else(|e| {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| eprintln!("warning: the channels-last layout failed ({e:#}); continuing in the standard layout"));
        x.contiguous()
    })
}

/// Whether `x` is laid out channels-last.
pub fn is_channels_last(x: &Tensor) -> Result<bool> {
    let mut yes = 0;
    // SAFETY: `x` outlives the call; an int out-parameter.
    call(|err, len| unsafe { storyvis_is_channels_last(x.as_ptr(), &mut yes, err, len) })?;
    Ok(yes != 0)
}

/// The libtorch loaded at run time: its build settings (`at::show_config()`) and the path of
/// the library they come from.
pub fn loaded_libtorch() -> Result<(String, String)> {
    let mut config = vec![0 as c_char; 16384];
    let mut path = vec![0 as c_char; 4096];
    // SAFETY: two buffers of the lengths passed, NUL-terminated by the C side.
    call(|err, len| unsafe {
        storyvis_libtorch_config(
            config.as_mut_ptr(),
            config.len(),
            path.as_mut_ptr(),
            path.len(),
            err,
            len,
        )
    })?;
    // SAFETY: both buffers hold NUL-terminated strings now.
    let text = |b: &[c_char]| {
        unsafe { std::ffi::CStr::from_ptr(b.as_ptr()) }.to_string_lossy().into_owned()
    };
    Ok((text(&config), text(&path)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::Module;
    use tch::{Kind, Tensor};

    #[test]
    fn channels_last_keeps_values_and_gradients() {
        let x = Tensor::randn([2, 3, 4, 5], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = channels_last(&x);
        assert!(is_channels_last(&y).unwrap() && !is_channels_last(&x).unwrap());
        assert_eq!(y.size(), x.size());
        assert_eq!(y.stride(), vec![60, 1, 15, 3]);
        assert!(y.equal(&x));
        let w = Tensor::randn([2, 3, 4, 5], (Kind::Float, Device::Cpu));
        (&y * &w).sum(Kind::Float).backward();
        assert!(x.grad().equal(&w));
        // A convolution keeps the layout it is given.
        let k = Tensor::randn([6, 3, 3, 3], (Kind::Float, Device::Cpu));
        let c = y.conv2d(&k, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
        assert!(is_channels_last(&c).unwrap());
        assert!(
            (c - x.conv2d(&k, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1))
                .abs()
                .max()
                .double_value(&[])
                < 1e-5
        );
    }

    #[test]
    fn libtorch_errors_are_errors_not_panics() {
        // libtorch refuses a channels-last copy of a 3-d tensor: an error, or the values
        // unchanged in the standard layout.
        let x = Tensor::randn([2, 3, 4], (Kind::Float, Device::Cpu));
        let e = f_channels_last(&x).unwrap_err().to_string();
        assert!(e.contains("libtorch") && e.contains("rank 4"), "{e}");
        assert!(channels_last(&x).equal(&x));
        // Any C++ exception, not only std::exception, becomes an error at the C boundary.
        // SAFETY: an error buffer owned by `call`.
        let e =
            call(|err, len| unsafe { storyvis_throw_unknown(err, len) }).unwrap_err().to_string();
        assert_eq!(e, "libtorch: unknown C++ exception");
    }

    #[test]
    fn memory_formats() {
        assert!(
            MemoryFormat::Auto.channels_last(Device::Cpu)
                && !MemoryFormat::Auto.channels_last(Device::Cuda(0))
        );
        assert!(
            MemoryFormat::ChannelsLast.channels_last(Device::Cuda(0))
                && !MemoryFormat::Standard.channels_last(Device::Cpu)
        );
        assert_eq!("channels-last".parse::<MemoryFormat>().unwrap(), MemoryFormat::ChannelsLast);
        assert!("nhwc"
            .parse::<MemoryFormat>()
            .unwrap_err()
            .to_string()
            .contains("auto, standard or channels-last"));
    }

    #[test]
    fn names_and_devices() {
        for p in [Precision::Fp32, Precision::Tf32, Precision::Bf16] {
            assert_eq!(p.to_string().parse::<Precision>().unwrap(), p);
        }
        assert!("fp16"
            .parse::<Precision>()
            .unwrap_err()
            .to_string()
            .contains("fp32, tf32 or bf16"));
        assert!(Precision::Tf32.apply(Device::Cpu).unwrap_err().to_string().contains("CUDA"));
    }

    #[test]
    fn tf32_switch_reads_back() {
        set_tf32(true).unwrap();
        assert_eq!(tf32().unwrap(), (true, true));
        Precision::Fp32.apply(Device::Cpu).unwrap();
        assert_eq!(tf32().unwrap(), (false, false));
    }

    #[test]
    fn bf16_autocast_runs_matrix_products_in_bf16_and_restores() {
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let lin = tch::nn::linear(vs.root(), 8, 4, Default::default());
        let x = Tensor::randn([3, 8], (Kind::Float, Device::Cpu));
        {
            let _fp32 = Precision::Fp32.autocast(Device::Cpu).unwrap();
            assert_eq!(lin.forward(&x).kind(), Kind::Float);
        }
        let before = autocast_state(Device::Cpu).unwrap();
        {
            let _amp = Precision::Bf16.autocast(Device::Cpu).unwrap();
            assert_eq!(autocast_state(Device::Cpu).unwrap(), (true, true));
            let y = lin.forward(&x);
            assert_eq!(y.kind(), Kind::BFloat16);
            // The product in bf16 is the fp32 one to bf16's 8 bits of mantissa.
            let want = tch::no_grad(|| x.matmul(&lin.ws.tr()) + lin.bs.as_ref().unwrap());
            let err = (y.to_kind(Kind::Float) - &want).abs().max().double_value(&[]);
            assert!(
                err > 0.0 && err < 0.05 * want.abs().max().double_value(&[]),
                "bf16 error {err}"
            );
        }
        assert_eq!(autocast_state(Device::Cpu).unwrap(), before);
        assert_eq!(lin.forward(&x).kind(), Kind::Float);
    }
}
