//! Compiles `csrc/precision.cpp` (the TF32 and autocast switches tch does not bind) and
//! `csrc/distributed.cpp` (libtorch's c10d process groups) against
//! the same libtorch headers that torch-sys builds its own C++ wrapper with. torch-sys passes
//! its libtorch lib folder to direct dependants as DEP_TCH_LIBTORCH_LIB; the headers sit
//! beside it in `include/`.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=csrc/precision.cpp");
    println!("cargo:rerun-if-changed=csrc/distributed.cpp");
    println!("cargo:rerun-if-changed=csrc/guard.h");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys reports its libtorch folder"),
    );
    let root = lib.parent().expect("libtorch's lib folder has a parent").to_path_buf();
    let include = root.join("include");
    // PyTorch's wheels since 2.7 are built with the C++11 ABI (torch-sys' own default too).
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("csrc/precision.cpp")
        .file("csrc/distributed.cpp")
        .compile("storyvis_precision");
}
