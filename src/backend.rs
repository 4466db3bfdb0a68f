//! Choosing the compute device from the backends compiled in.

use burn::tensor::Device;

/// A backend that can be asked for by name (`flex`, `tch`, `wgpu`, `cuda`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

impl BackendKind {
    /// Every backend, compiled in or not.
    pub const ALL: [BackendKind; 4] = [Self::Flex, Self::Tch, Self::Wgpu, Self::Cuda];

    /// The name used on the command line and in provenance records.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Tch => "tch",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| format!("unknown backend `{s}` (flex, tch, wgpu, cuda)"))
    }
}

/// The backends compiled into this binary.
pub fn available() -> Vec<BackendKind> {
    // flex is always compiled in: every library crate takes Burn with it (one Burn build).
    let mut v = vec![BackendKind::Flex];
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
        BackendKind::Flex => Ok(Device::flex()),
        #[cfg(feature = "tch")]
        BackendKind::Tch => Ok(Device::libtorch()),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => Ok(Device::cuda(0)),
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
