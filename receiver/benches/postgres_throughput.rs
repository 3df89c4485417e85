//! Placeholder until the PostgreSQL throughput benchmark lands (next commit).
fn main() {}
