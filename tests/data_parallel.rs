//! Data-parallel training without MPI: ranks as threads of this process, talking
//! through an in-memory [`Communicator`]. Checks the arithmetic of the split — the
//! sum of the ranks' weighted gradients is the whole batch's gradient — the bucketed
//! sync, and that `fit` over two ranks trains the model one process trains.
//! (`tests/distributed.rs` runs the same through `mpirun`.)

use std::sync::{Arc, Barrier, Mutex};

use nabla::Tensor;
use nabla::data::{DataLoader, load_mnist};
use nabla::distributed::{Communicator, GradientSync, World};
use nabla::loss::{CrossEntropyOptions, cross_entropy};
use nabla::nn::{Dropout, Linear, Module, Relu, Sequential};
use nabla::optim::{Optimizer, Sgd};
use nabla::train::{Control, FitOptions, fit};

/// `size` ranks in one process: each collective deposits every rank's values, waits
/// for all, and sums them in rank order (so every rank gets the same bits).
struct ThreadGroup {
    size: usize,
    slots: Mutex<Vec<Vec<f64>>>,
    barrier: Barrier,
}

struct Member {
    rank: usize,
    group: Arc<ThreadGroup>,
}

impl Member {
    fn exchange(&self, values: Vec<f64>) -> Vec<Vec<f64>> {
        self.group.slots.lock().unwrap()[self.rank] = values;
        self.group.barrier.wait();
        let all = self.group.slots.lock().unwrap().clone();
        self.group.barrier.wait(); // nobody overwrites a slot before all have read
        all
    }
}

impl Communicator for Member {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.group.size
    }
    fn sum_f32(&self, values: &mut [f32]) {
        let all = self.exchange(values.iter().map(|&v| v as f64).collect());
        for (i, value) in values.iter_mut().enumerate() {
            *value = all.iter().fold(0.0f32, |sum, rank| sum + rank[i] as f32);
        }
    }
    fn sum_f64(&self, values: &mut [f64]) {
        let all = self.exchange(values.to_vec());
        for (i, value) in values.iter_mut().enumerate() {
            *value = all.iter().fold(0.0, |sum, rank| sum + rank[i]);
        }
    }
    fn gather_u64(&self, value: u64) -> Vec<u64> {
        let all = self.exchange(vec![f64::from_bits(value)]);
        all.iter().map(|v| v[0].to_bits()).collect()
    }
    fn gather_f32(&self, values: &[f32]) -> Vec<f32> {
        let all = self.exchange(values.iter().map(|&v| v as f64).collect());
        all.iter().flatten().map(|&v| v as f32).collect()
    }
    fn abort(&self, code: i32) -> ! {
        panic!("rank {} aborted with code {code}", self.rank)
    }
}

/// Runs `body(world)` on `size` threads, one per rank; returns their results in rank order.
fn on_ranks<R: Send>(size: usize, body: impl Fn(World) -> R + Sync) -> Vec<R> {
    let group = Arc::new(ThreadGroup {
        size,
        slots: Mutex::new(vec![Vec::new(); size]),
        barrier: Barrier::new(size),
    });
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..size)
            .map(|rank| {
                let world = World::new(Arc::new(Member {
                    rank,
                    group: Arc::clone(&group),
                }));
                let body = &body;
                scope.spawn(move || body(world))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn mlp(seed: u64) -> Sequential {
    let mut rng = nabla::rng(seed);
    Sequential::new()
        .layer(Linear::new(20, 16, &mut rng))
        .layer(Relu)
        .layer(Linear::new(16, 16, &mut rng))
        .layer(Relu)
        .layer(Linear::new(16, 4, &mut rng))
}

fn ce(logits: &Tensor, labels: &[usize]) -> Tensor {
    cross_entropy(logits, labels, &CrossEntropyOptions::default())
}

fn gradients(model: &Sequential) -> Vec<Vec<f32>> {
    model
        .parameters()
        .iter()
        .map(|p| p.grad().unwrap().to_vec())
        .collect()
}

/// 12 samples of 20 features with 4 classes, and the gradients one process takes
/// from them: (inputs as plain values, so that each rank thread makes its own
/// tensors; labels; gradients).
fn batch_of_twelve(seed: u64) -> (Vec<f32>, Vec<usize>, Vec<Vec<f32>>) {
    let inputs = Tensor::<f32>::randn(&[12, 20], 0.0, 1.0, &mut nabla::rng(seed));
    let labels: Vec<usize> = (0..12).map(|i| i % 4).collect();
    let whole = mlp(0);
    ce(&whole.forward(&inputs), &labels).backward();
    (inputs.to_vec(), labels, gradients(&whole))
}

/// This rank's share of the batch: its weighted mean loss, n_r/B · mean over its rows,
/// before backward.
fn weighted_share_loss(
    world: &World,
    model: &Sequential,
    inputs: &[f32],
    labels: &[usize],
) -> Tensor {
    let rows = world.share(12);
    let share = Tensor::from_vec(
        inputs[rows.start * 20..rows.end * 20].to_vec(),
        &[rows.len(), 20],
    );
    let loss = ce(&model.forward(&share), &labels[rows.clone()]);
    &loss * (rows.len() as f32 / 12.0)
}

/// Every rank holds the same summed gradients, and they are the batch's gradients.
fn assert_summed(per_rank: &[Vec<Vec<f32>>], expected: &[Vec<f32>]) {
    for rank in per_rank {
        assert_eq!(
            rank, &per_rank[0],
            "every rank holds the same summed gradients"
        );
    }
    for (got, want) in per_rank[0].iter().zip(expected) {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-6 * (1.0 + w.abs()), "{g} vs {w}");
        }
    }
}

/// dL/dw of the mean loss over 12 samples, from one process, equals the sum over 3
/// ranks of (4/12)·dL_r/dw — with buckets of at most 100 values, so the sync sends
/// several buckets, some before backward has finished.
#[test]
fn weighted_rank_gradients_sum_to_the_batch_gradient() {
    let (inputs, labels, expected) = batch_of_twelve(1);
    let per_rank = on_ranks(3, |world| {
        let model = mlp(0);
        let mut sync = GradientSync::new(&world, &model.named_parameters(), 100);
        let loss = weighted_share_loss(&world, &model, &inputs, &labels);
        let mut sent_so_far = Vec::new();
        loss.backward_with_hook(&mut |leaf| {
            sync.ready(leaf);
            sent_so_far.push(sync.sent());
        });
        // buckets leave while the walk goes on: the last layers' before the first layer's
        assert!(sync.buckets() >= 3, "{} buckets", sync.buckets());
        let before_the_last_leaf = sent_so_far[sent_so_far.len() - 2];
        assert!(before_the_last_leaf >= 1, "{sent_so_far:?}");
        assert_eq!(
            sync.sent(),
            sync.buckets(),
            "every bucket is complete after backward"
        );
        sync.finish();
        let stats = sync.stats();
        assert_eq!(stats.steps, 1);
        assert_eq!(stats.gradient_bytes, 4 * model.num_parameters());
        gradients(&model)
    });
    assert_summed(&per_rank, &expected);
}

/// Without the hook every bucket is still unsent when backward ends: `finish` sends
/// them all, behind a sum queued before backward, and both come back right on every
/// rank (the collectives keep the order they were started in).
#[test]
fn finish_sums_the_buckets_backward_left_unsent() {
    let (inputs, labels, expected) = batch_of_twelve(2);
    let per_rank = on_ranks(3, |world| {
        let model = mlp(0);
        let mut sync = GradientSync::new(&world, &model.named_parameters(), 100);
        let counted = world.start_sum_f64(vec![world.share(12).len() as f64]);
        weighted_share_loss(&world, &model, &inputs, &labels).backward();
        assert_eq!(sync.sent(), 0);
        sync.finish();
        assert_eq!(counted.wait(), [12.0], "the sum queued first");
        assert_eq!(sync.stats().steps, 1);
        gradients(&model)
    });
    assert_summed(&per_rank, &expected);
}

/// Large gradients travel in their own memory, lent to the all-reduce — but not
/// one that shares its memory with a gradient the walk has still to use: `add` hands
/// the same dL/dz to both its inputs, so lending `b`'s gradient early would corrupt
/// the one that flows on to `a`.
///
/// Rank r's loss is Σ (3a + b)·c_r with c_r = r + 1, so summed over two ranks
/// dL/da = 3·(1 + 2) = 9 and dL/db = 1 + 2 = 3 in every element.
#[test]
fn lent_gradients_come_back_summed_and_aliased_ones_are_copied() {
    let per_rank = on_ranks(2, |world| {
        let a = Tensor::<f32>::zeros(&[16]).requires_grad(true);
        let b = Tensor::<f32>::zeros(&[16]).requires_grad(true);
        let c = Tensor::<f32>::full(&[16], (world.rank() + 1) as f32);
        let params = [("a".to_string(), a.clone()), ("b".to_string(), b.clone())];
        // buckets of 16 values: both parameters fill one, and are lent
        let mut sync = GradientSync::new(&world, &params, 16);
        assert_eq!(sync.buckets(), 2);
        let loss = ((&(&a * 3.0) + &b) * &c).sum();
        loss.backward_with_hook(&mut |leaf| sync.ready(leaf));
        sync.finish();
        // and a second step reuses the buffers the first one left
        a.zero_grad();
        b.zero_grad();
        let loss = ((&(&a * 3.0) + &b) * &c).sum();
        loss.backward_with_hook(&mut |leaf| sync.ready(leaf));
        sync.finish();
        (a.grad().unwrap().to_vec(), b.grad().unwrap().to_vec())
    });
    for (da, db) in per_rank {
        assert_eq!(da, vec![9.0; 16]);
        assert_eq!(db, vec![3.0; 16]);
    }
}

/// `fit` over two ranks ends where one process ends (to rounding), the ranks hold
/// identical weights, the test metrics are over all samples, and dropout draws a
/// different mask on each rank.
#[test]
fn fit_on_two_ranks_trains_the_one_process_model() {
    let (train, test) = load_mnist(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist")).unwrap();
    let (train, test) = (
        train.truncate(600).flattened(),
        test.truncate(200).flattened(),
    );
    let train_on = |world: World| {
        let mut rng = nabla::rng(3);
        let model = Sequential::new()
            .layer(Linear::new(784, 32, &mut rng))
            .layer(Relu)
            .layer(Linear::new(32, 10, &mut rng));
        let mut optimizer = Sgd::new(model.named_parameters(), 0.05).momentum(0.9);
        let loader = DataLoader::new(&train, 30).shuffle(0);
        let test_loader = DataLoader::new(&test, 64);
        let options = FitOptions {
            epochs: 2,
            world,
            check_replicas_every_step: true,
            ..Default::default()
        };
        let history = fit(
            &model,
            &mut optimizer,
            &loader,
            Some(&test_loader),
            &ce,
            &options,
            &mut |_| Control::Continue,
        )
        .unwrap();
        (
            model
                .parameters()
                .iter()
                .map(Tensor::to_vec)
                .collect::<Vec<_>>(),
            history,
        )
    };
    let (alone, alone_history) = train_on(World::single());
    let ranks = on_ranks(2, train_on);
    assert_eq!(ranks[0].0, ranks[1].0, "the replicas differ");
    for (got, want) in ranks[0].0.iter().zip(&alone) {
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let diff = got
            .iter()
            .zip(want)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff <= 1e-6 * scale, "{diff} of {scale}");
    }
    let (two, one) = (&ranks[0].1[1], &alone_history[1]);
    assert_eq!(two.test_accuracy, one.test_accuracy);
    let (l2, l1) = (two.test_loss.unwrap(), one.test_loss.unwrap());
    assert!((l2 - l1).abs() <= 1e-5 * l1, "{l2} vs {l1}");
    assert!(two.communication.is_some() && one.communication.is_none());
    assert_eq!(two.communication.unwrap().steps, 20);

    // dropout: stream 0 is a fresh layer's, other ranks draw other masks
    let draw = |stream: Option<u64>| {
        let dropout = Dropout::new(0.5, 7);
        if let Some(stream) = stream {
            Module::<f32>::set_random_stream(&dropout, stream);
        }
        dropout.forward(&Tensor::<f32>::ones(&[64])).to_vec()
    };
    assert_eq!(draw(None), draw(Some(0)));
    assert_ne!(draw(Some(0)), draw(Some(1)));
}

#[test]
fn optimizer_params_are_what_the_sync_buckets() {
    // a frozen parameter gets no bucket and no gradient
    let model = mlp(0);
    model.parameters()[0].set_requires_grad(false);
    let optimizer = Sgd::new(model.named_parameters(), 0.1);
    let world = World::single();
    let sync = GradientSync::new(&world, optimizer.params(), 1 << 20);
    let trainable: usize = model
        .parameters()
        .iter()
        .filter(|p| p.tracks_grad())
        .map(Tensor::numel)
        .sum();
    assert_eq!(sync.stats().gradient_bytes, 4 * trainable);
}

/// Synchronised batch norm, in f64: two ranks, each with half of an [8, 3, 5] batch,
/// normalise with the whole batch's mean and variance and backpropagate the whole
/// batch's Σg and Σg·x̂ — the outputs, dL/dx and the running statistics equal one
/// process's on the whole batch (to 1e-12), and dL/dγ, dL/dβ summed over the ranks
/// equal its parameter gradients.
#[test]
fn synchronised_batch_norm_equals_batch_norm_on_the_whole_batch() {
    use nabla::ops::norm::{RunningStatistics, SumAcross};
    let shape = [8, 3, 5];
    let x_all = Tensor::<f64>::randn(&shape, 2.0, 3.0, &mut nabla::rng(4)).to_vec();
    // L = Σ y ⊙ r with fixed r: dL/dy = r, different everywhere
    let r_all = Tensor::<f64>::randn(&shape, 0.0, 1.0, &mut nabla::rng(5)).to_vec();
    let per_sample = 15;
    let run = |rows: std::ops::Range<usize>, across: Option<SumAcross>| {
        let x = Tensor::from_vec(
            x_all[rows.start * per_sample..rows.end * per_sample].to_vec(),
            &[rows.len(), 3, 5],
        )
        .requires_grad(true);
        let r = Tensor::from_vec(
            r_all[rows.start * per_sample..rows.end * per_sample].to_vec(),
            &[rows.len(), 3, 5],
        );
        let weight = Tensor::from_vec(vec![1.5, -0.5, 2.0], &[3]).requires_grad(true);
        let bias = Tensor::from_vec(vec![0.1, 0.2, 0.3], &[3]).requires_grad(true);
        let (mean, var) = (Tensor::<f64>::zeros(&[3]), Tensor::<f64>::ones(&[3]));
        let running = RunningStatistics {
            mean: &mean,
            var: &var,
            momentum: 0.1,
        };
        let y = x.batch_norm_across(&weight, &bias, 1e-5, Some(running), across);
        (&y * &r).sum().backward();
        Normalised {
            output: y.to_vec(),
            grads: [&x, &weight, &bias].map(|t| t.grad().unwrap().to_vec()),
            running_mean: mean.to_vec(),
            running_var: var.to_vec(),
        }
    };
    let whole = run(0..8, None);
    let halves = on_ranks(2, |world| {
        let rows = world.share(8);
        let across: SumAcross = std::rc::Rc::new(move |sums: &mut [f64]| world.sum_f64(sums));
        run(rows, Some(across))
    });
    let close = |a: &[f64], b: &[f64]| {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{x} vs {y}");
        }
    };
    let joined = |part: fn(&Normalised) -> &[f64]| {
        halves
            .iter()
            .flat_map(|h| part(h).to_vec())
            .collect::<Vec<_>>()
    };
    close(&joined(|h| &h.output), &whole.output);
    close(&joined(|h| &h.grads[0]), &whole.grads[0]); // dL/dx
    for parameter in 1..3 {
        let summed: Vec<f64> = (0..3)
            .map(|c| halves[0].grads[parameter][c] + halves[1].grads[parameter][c])
            .collect();
        close(&summed, &whole.grads[parameter]);
    }
    for half in &halves {
        close(&half.running_mean, &whole.running_mean);
        close(&half.running_var, &whole.running_var); // unbiased over all 40 values
    }
}

/// What one batch-norm step produced: y, (dL/dx, dL/dγ, dL/dβ), running statistics.
struct Normalised {
    output: Vec<f64>,
    grads: [Vec<f64>; 3],
    running_mean: Vec<f64>,
    running_var: Vec<f64>,
}

/// `fixed_chunks = 4`: one process, 2 ranks and 4 ranks train bit-identical weights
/// (with dropout, whose masks follow the chunk, not the rank).
#[test]
fn fixed_chunks_give_the_same_bits_on_any_power_of_two_rank_count() {
    let (train, _) = load_mnist(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist")).unwrap();
    let train = train.truncate(400).flattened();
    let train_on = |world: World| {
        let mut rng = nabla::rng(8);
        let model = Sequential::new()
            .layer(Linear::new(784, 32, &mut rng))
            .layer(Relu)
            .layer(Dropout::new(0.3, 9))
            .layer(Linear::new(32, 10, &mut rng));
        let mut optimizer = nabla::optim::Adam::new(model.named_parameters(), 0.003);
        let loader = DataLoader::new(&train, 40).shuffle(1);
        let options = FitOptions {
            epochs: 2,
            world,
            fixed_chunks: Some(4),
            check_replicas_every_step: true,
            ..Default::default()
        };
        let history = fit::<_, nabla::data::ImageDataset>(
            &model,
            &mut optimizer,
            &loader,
            None,
            &ce,
            &options,
            &mut |_| Control::Continue,
        )
        .unwrap();
        let weights: Vec<Vec<f32>> = model.parameters().iter().map(Tensor::to_vec).collect();
        (weights, [history[0].train_loss, history[1].train_loss])
    };
    let alone = train_on(World::single());
    let [first, second] = alone.1;
    assert!(
        second < 0.8 * first,
        "it learns: train loss {first} then {second}"
    );
    for ranks in [2, 4] {
        for rank in on_ranks(ranks, train_on) {
            assert_eq!(rank.0, alone.0, "{ranks} ranks: not the same bits");
        }
    }
    // 3 chunks, or 4 chunks on 8 ranks, cannot be split into equal subtrees
    let refused = |chunks: usize, ranks: usize| {
        on_ranks(ranks, |world| {
            let model = mlp(0);
            let optimizer = Sgd::new(model.named_parameters(), 0.1);
            nabla::train::parallel::DataParallel::new(&world, &model, &optimizer)
                .fixed_chunks(chunks)
                .err()
                .map(|e| e.to_string())
        })
        .remove(0)
        .expect("refused")
    };
    assert!(refused(3, 1).contains("fixed_chunks = 3 with 1 rank(s)"));
    assert!(refused(4, 8).contains("a power of two that divides it"));
}

/// A rank's share of a batch is exactly those rows of the one-process batch — the
/// same samples, augmented with the same draws (they are keyed by sample, not by
/// rank), so no two ranks ever see the same crop of the same image.
#[test]
fn shards_are_rows_of_the_one_process_batch_with_its_augmentation() {
    use nabla::data::augment::{Augmentation, RandomCrop};
    let (train, _) = load_mnist(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist")).unwrap();
    let train = train.truncate(100);
    let augmentation = Augmentation {
        random_crop: Some(RandomCrop {
            size: 28,
            padding: 4,
        }),
        horizontal_flip: true,
    };
    let loader = DataLoader::new(&train, 30)
        .shuffle(3)
        .augment(augmentation, 7, vec![0.0])
        .unwrap();
    for epoch in 0..2 {
        let whole: Vec<_> = loader.epoch(epoch).collect();
        let shards: Vec<Vec<_>> = (0..3)
            .map(|rank| loader.clone().shard(rank, 3).epoch(epoch).collect())
            .collect();
        for (b, batch) in whole.iter().enumerate() {
            let joined: Vec<f32> = shards
                .iter()
                .flat_map(|shard| shard[b].inputs.to_vec())
                .collect();
            let labels: Vec<usize> = shards
                .iter()
                .flat_map(|shard| shard[b].labels.clone())
                .collect();
            assert_eq!(joined, batch.inputs.to_vec(), "epoch {epoch}, batch {b}");
            assert_eq!(labels, batch.labels);
        }
        // and the augmentation did something: not the plain images
        let plain: Vec<_> = DataLoader::new(&train, 30)
            .shuffle(3)
            .epoch(epoch)
            .collect();
        assert_ne!(plain[0].inputs.to_vec(), whole[0].inputs.to_vec());
    }
}
