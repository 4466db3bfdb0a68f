//! `accrue_core::kernels` against the Burn 0.22 `flex` ops they replace, one op at a time, on
//! ResNet-38's shapes: a 3×3 "same" convolution and its batch norm, forward and forward +
//! backward (the sum of the output as the loss, so every gradient is computed). Two sizes:
//! the main job's encoder (`resnet38-tiny`: 32 clips of 1 s, 16 channels on 50 × 32) and the
//! full model's first residual stage (2 clips of 10 s, 64 channels on 500 × 32).
//!
//!     cargo bench -p accrue-core --bench kernels
//!
//! Threads: `RAYON_NUM_THREADS` (the main job's children run on 1). The ratios are in
//! docs/benchmarks.md; if a Burn upgrade makes its own op faster, this bench says so and the
//! kernel can go.

use accrue_core::kernels::{batch_norm_train, conv2d};
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    for (name, dims) in [("tiny", [32, 16, 50, 32]), ("full", [2, 64, 500, 32])] {
        let [n, ch, h, w] = dims;
        let mut group = c.benchmark_group(format!("{name}_{n}x{ch}x{h}x{w}"));
        group.sample_size(10);
        let device = Device::flex().autodiff();
        let conv = Conv2dConfig::new([ch, ch], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false)
            .init(&device);
        let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        let x_plain = x.clone().inner();
        let conv_plain = conv.valid();
        group.bench_function("conv_forward/burn", |b| {
            b.iter(|| conv_plain.forward(x_plain.clone()).into_data())
        });
        group.bench_function("conv_forward/accrue", |b| {
            b.iter(|| conv2d(&conv_plain, x_plain.clone()).into_data())
        });
        let train = |fast: bool| {
            let x = x.clone().detach().require_grad();
            let y = if fast {
                conv2d(&conv, x.clone())
            } else {
                conv.forward(x.clone())
            };
            let grads = y.sum().backward();
            (x.grad(&grads), conv.weight.val().grad(&grads))
        };
        group.bench_function("conv_train/burn", |b| b.iter(|| train(false)));
        group.bench_function("conv_train/accrue", |b| b.iter(|| train(true)));
        let gamma = Tensor::<1>::ones([ch], &device).require_grad();
        let beta = Tensor::<1>::zeros([ch], &device).require_grad();
        let bn = |fast: bool| {
            let x = x.clone().detach().require_grad();
            let y = if fast {
                batch_norm_train(&x, &gamma, &beta, 1e-5)
                    .expect("flex f32")
                    .0
            } else {
                burn::tensor::module::batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5)
                    .output
            };
            let grads = (y.clone() * y).sum().backward();
            x.grad(&grads)
        };
        group.bench_function("batch_norm_train/burn", |b| b.iter(|| bn(false)));
        group.bench_function("batch_norm_train/accrue", |b| b.iter(|| bn(true)));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
