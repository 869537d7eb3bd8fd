//! Which waiting inputs run together. Inputs wait in buckets by token count (powers of two), so
//! a batch pads to at most twice its shortest input's length: one long text never makes a batch
//! of short ones pay for its length. A batch leaves when it is full, or when its oldest input
//! has waited `max_delay`.

use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

/// Smallest bucket: inputs up to 16 tokens pad together.
const MIN_BUCKET: usize = 16;

/// How batches are formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Most inputs in one batch.
    pub max_batch: usize,
    /// Most padded tokens (inputs × longest input) in one batch.
    pub max_batch_tokens: usize,
    /// Longest an input waits for a fuller batch while an engine is free; zero sends whatever
    /// is waiting as soon as an engine is free (batches still form while engines are busy).
    pub max_delay: Duration,
}

struct Waiting<T> {
    item: T,
    arrived: Instant,
}

/// Inputs waiting for an engine, bucketed by length.
pub(crate) struct BatchQueue<T> {
    policy: BatchPolicy,
    buckets: BTreeMap<usize, VecDeque<Waiting<T>>>,
    len: usize,
}

/// The bucket an input of `tokens` tokens waits in: the next power of two, at least 16.
fn bucket_of(tokens: usize) -> usize {
    tokens.max(MIN_BUCKET).next_power_of_two()
}

impl<T> BatchQueue<T> {
    pub(crate) fn new(policy: BatchPolicy) -> Self {
        Self {
            policy,
            buckets: BTreeMap::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn push(&mut self, item: T, tokens: usize, now: Instant) {
        self.buckets
            .entry(bucket_of(tokens))
            .or_default()
            .push_back(Waiting { item, arrived: now });
        self.len += 1;
    }

    /// Most inputs a batch from `bucket` may hold.
    fn capacity(&self, bucket: usize) -> usize {
        (self.policy.max_batch_tokens / bucket).clamp(1, self.policy.max_batch.max(1))
    }

    /// When the oldest waiting input's delay runs out.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.oldest()
            .map(|(_, arrived)| arrived + self.policy.max_delay)
    }

    fn oldest(&self) -> Option<(usize, Instant)> {
        self.buckets
            .iter()
            .filter_map(|(&bucket, queue)| queue.front().map(|w| (bucket, w.arrived)))
            .min_by_key(|&(_, arrived)| arrived)
    }

    /// The next batch to run, if one is due: the bucket of the oldest input once its delay has
    /// run out (so no input waits forever behind a stream of others), else a bucket that fills
    /// a batch. A batch that is not full takes inputs from the next smaller bucket too (they
    /// pad to at most twice their length).
    pub(crate) fn next_batch(&mut self, now: Instant) -> Option<Vec<T>> {
        let (oldest, arrived) = self.oldest()?;
        let bucket = if now >= arrived + self.policy.max_delay {
            oldest
        } else {
            self.buckets
                .iter()
                .filter(|(&bucket, queue)| queue.len() >= self.capacity(bucket))
                .min_by_key(|(_, queue)| queue.front().map(|w| w.arrived))
                .map(|(&bucket, _)| bucket)?
        };
        let capacity = self.capacity(bucket);
        let mut batch = self.take(bucket, capacity);
        if batch.len() < capacity && bucket > MIN_BUCKET {
            let room = capacity - batch.len();
            batch.extend(self.take(bucket / 2, room));
        }
        Some(batch)
    }

    fn take(&mut self, bucket: usize, most: usize) -> Vec<T> {
        let Some(queue) = self.buckets.get_mut(&bucket) else {
            return Vec::new();
        };
        let n = most.min(queue.len());
        let taken: Vec<T> = queue.drain(..n).map(|w| w.item).collect();
        if queue.is_empty() {
            self.buckets.remove(&bucket);
        }
        self.len -= taken.len();
        taken
    }

    /// Removes inputs nobody waits for any more (their request was cancelled).
    pub(crate) fn retain(&mut self, keep: impl Fn(&T) -> bool) {
        for queue in self.buckets.values_mut() {
            queue.retain(|w| keep(&w.item));
        }
        self.buckets.retain(|_, queue| !queue.is_empty());
        self.len = self.buckets.values().map(VecDeque::len).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_batch: usize, delay_ms: u64) -> BatchPolicy {
        BatchPolicy {
            max_batch,
            max_batch_tokens: 4096,
            max_delay: Duration::from_millis(delay_ms),
        }
    }

    #[test]
    fn without_delay_the_oldest_input_leaves_at_once() {
        let mut queue = BatchQueue::new(policy(8, 0));
        let now = Instant::now();
        queue.push("a", 5, now);
        assert_eq!(queue.next_batch(now), Some(vec!["a"]));
        assert_eq!(queue.next_batch(now), None);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn a_delay_waits_for_a_fuller_batch_until_it_runs_out() {
        let mut queue = BatchQueue::new(policy(3, 10));
        let t0 = Instant::now();
        queue.push(1, 5, t0);
        assert_eq!(queue.deadline(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(queue.next_batch(t0), None);
        queue.push(2, 6, t0 + Duration::from_millis(4));
        assert_eq!(queue.next_batch(t0 + Duration::from_millis(9)), None);
        assert_eq!(
            queue.next_batch(t0 + Duration::from_millis(10)),
            Some(vec![1, 2])
        );
        // A full batch does not wait.
        for i in 0..4 {
            queue.push(10 + i, 5, t0);
        }
        assert_eq!(queue.next_batch(t0), Some(vec![10, 11, 12]));
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn long_inputs_do_not_join_short_ones() {
        let mut queue = BatchQueue::new(policy(8, 0));
        let t0 = Instant::now();
        queue.push("short-1", 8, t0);
        queue.push("long", 200, t0 + Duration::from_millis(1));
        queue.push("short-2", 12, t0 + Duration::from_millis(2));
        let later = t0 + Duration::from_millis(5);
        assert_eq!(queue.next_batch(later), Some(vec!["short-1", "short-2"]));
        assert_eq!(queue.next_batch(later), Some(vec!["long"]));
    }

    #[test]
    fn a_batch_takes_from_the_next_smaller_bucket() {
        let mut queue = BatchQueue::new(policy(8, 0));
        let t0 = Instant::now();
        queue.push("33", 33, t0);
        queue.push("20", 20, t0 + Duration::from_millis(1));
        queue.push("5", 5, t0 + Duration::from_millis(2));
        let later = t0 + Duration::from_millis(3);
        // Bucket 64 holds the oldest; bucket 32 joins it, bucket 16 does not.
        assert_eq!(queue.next_batch(later), Some(vec!["33", "20"]));
        assert_eq!(queue.next_batch(later), Some(vec!["5"]));
    }

    #[test]
    fn padded_tokens_bound_batches_of_long_inputs() {
        let mut queue = BatchQueue::new(BatchPolicy {
            max_batch: 32,
            max_batch_tokens: 1024,
            max_delay: Duration::ZERO,
        });
        let t0 = Instant::now();
        for i in 0..6 {
            queue.push(i, 250, t0);
        }
        assert_eq!(queue.next_batch(t0).map(|b| b.len()), Some(4));
        assert_eq!(queue.next_batch(t0).map(|b| b.len()), Some(2));
    }

    #[test]
    fn an_input_past_its_delay_goes_before_full_batches() {
        let mut queue = BatchQueue::new(policy(2, 10));
        let t0 = Instant::now();
        queue.push("long", 300, t0);
        for i in 1..=6 {
            queue.push("short", 5, t0 + Duration::from_millis(i));
        }
        // Before its delay runs out the long input lets full batches of short ones pass...
        let early = t0 + Duration::from_millis(7);
        assert_eq!(queue.next_batch(early), Some(vec!["short", "short"]));
        // ...after it, it goes first, however many short ones are waiting.
        let late = t0 + Duration::from_millis(10);
        assert_eq!(queue.next_batch(late), Some(vec!["long"]));
    }

    #[test]
    fn cancelled_inputs_are_dropped() {
        let mut queue = BatchQueue::new(policy(8, 0));
        let t0 = Instant::now();
        for i in 0..5 {
            queue.push(i, 5, t0);
        }
        queue.retain(|&i| i % 2 == 0);
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.next_batch(t0), Some(vec![0, 2, 4]));
    }
}
