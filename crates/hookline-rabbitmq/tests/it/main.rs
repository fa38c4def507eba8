//! Integration tests against real RabbitMQ: the shared node on 127.0.0.1:5672 for
//! everything that does not need an outage, a private node for the reconnect test.
//! Every test uses its own topology prefix and deletes its topology at the end.

mod consume;
mod lanes;
mod outage;
mod publish;
mod support;
mod throughput;
