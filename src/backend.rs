//! Choosing the compute device from the backends compiled in.

use burn::tensor::Device;

/// A backend that can be asked for by name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// Pure-Rust CPU backend (default feature `flex`).
    Flex,
    /// libtorch CPU (feature `tch`).
    Tch,
    /// wgpu default adapter (feature `wgpu`).
    Wgpu,
    /// CUDA device 0 (feature `cuda`).
    Cuda,
}

/// The backends compiled into this binary.
pub fn available() -> Vec<BackendKind> {
    let mut v = Vec::new();
    if cfg!(feature = "flex") {
        v.push(BackendKind::Flex);
    }
    if cfg!(feature = "tch") {
        v.push(BackendKind::Tch);
    }
    if cfg!(feature = "wgpu") {
        v.push(BackendKind::Wgpu);
    }
    if cfg!(feature = "cuda") {
        v.push(BackendKind::Cuda);
    }
    v
}

/// The device of `kind`, or an error naming the cargo feature to enable.
pub fn device(kind: BackendKind) -> Result<Device, String> {
    let missing = |feature: &str| {
        Err(format!(
            "backend {kind:?} is not compiled in; rebuild with `--features {feature}` \
             (compiled in: {:?})",
            available()
        ))
    };
    match kind {
        #[cfg(feature = "flex")]
        BackendKind::Flex => Ok(Device::flex()),
        #[cfg(feature = "tch")]
        BackendKind::Tch => Ok(Device::libtorch()),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => Ok(Device::cuda(0)),
        #[allow(unreachable_patterns)]
        BackendKind::Flex => missing("flex"),
        #[allow(unreachable_patterns)]
        BackendKind::Tch => missing("tch"),
        #[allow(unreachable_patterns)]
        BackendKind::Wgpu => missing("wgpu"),
        #[allow(unreachable_patterns)]
        BackendKind::Cuda => missing("cuda"),
    }
}

/// `replicas` devices of `kind` for data-parallel training: CUDA devices `0..replicas`, or
/// `replicas` handles of the one device of the other backends (they take turns; useful to
/// test the multi-device path, not faster).
pub fn devices(kind: BackendKind, replicas: usize) -> Result<Vec<Device>, String> {
    if replicas == 0 {
        return Err("at least one replica is needed".into());
    }
    #[cfg(feature = "cuda")]
    if kind == BackendKind::Cuda {
        return Ok((0..replicas).map(Device::cuda).collect());
    }
    Ok(vec![device(kind)?; replicas])
}
