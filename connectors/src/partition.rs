//! Kafka default partitioner (murmur2); filled in by the producer work.
