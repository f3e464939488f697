//! The paper's measurements of a trained head: how many channels carry a decision
//! ([`concentration`]), how disentangled the channels are ([`rv`]), how faithful the heatmaps
//! are ([`faithfulness`]) and whether they point at the known deciding part ([`pointing`]).

pub mod concentration;
