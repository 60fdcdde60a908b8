//! The node's integration tests, one binary: nodes started in-process on real sockets on
//! 127.0.0.1 with real mutual TLS and sled ledgers in temporary directories, driven as
//! participants and peers drive them.

// The settlement protocol end to end between a JP and an SG node: payments both ways, every
// rejection with "nothing moved" checked on both ledgers.
mod relay;

// Hostile inputs on the public Payments API: garbage, bad UTF-8, missing fields, oversized
// messages, bad amounts and UETRs; each FF01 and changing nothing.
mod hostile;

// The operator RPCs (OpenAccount, FundAccount, CloseAccount) and who may call them.
mod admin;

// Who may see and do what on the public listener: banks their own accounts and payments, the
// operator every account, paged; operator limits (issue 12).
mod participants;

// Relay calls from parties that are not the corridor's peer: refused, nothing written, the
// genuine payment unaffected (issue 11).
mod peers;

// Quotes tied to the node that issued them, and the receiver's rate band (issue 11).
mod quotes;

// A node refuses to start on books that fail its start-up checks (issue 11).
mod books;

// The listeners over real sockets: TLS refusals counted and logged, health, reflection, limits.
mod net;

// A graceful stop with payments in flight: no new payment, the peer still answered, the
// payments in flight settled, the wait bounded (issue 11, defect 11).
mod shutdown;

// SubmitPayments streams with bounded lives: ended when idle or too old (issue 12).
mod streams;

// The Prometheus endpoint of both nodes after real traffic, in both exposition formats.
mod metrics;

// A third jurisdiction (TH) from data only: a PKI, agreement rows and a configuration file.
mod third_jurisdiction;

// Sanctions screening through a running pair: variants of a listed name refused RR04, a list
// file reloaded without a restart (issue 12, build item 4).
mod screening;

// Starting JP and SG nodes from the devnet configurations, participants, signed instructions,
// metrics samples, and a proxy that holds or cuts the relay link to keep payments in flight.
mod support;

// Prepares in batches on one stream per peer: authenticated whole before any decision, answered
// per instruction as the unary Prepare would, only for corridor peers, bounded (issue 14).
mod batches;

// Nodes whose books live in PostgreSQL: settlement, a restart, the database lost and back
// (issue 15).
mod postgres;
