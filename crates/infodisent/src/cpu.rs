//! The processor figures were measured on: its name, core count and the vector and matrix
//! extensions that decide which kernels ran, stated beside every benchmark figure because the
//! same command gives other numbers on an AVX2-only AMD and an AVX-512/AMX Intel machine.

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// Extensions worth naming, in the spelling of Linux's `/proc/cpuinfo` flags.
pub const FEATURES: [&str; 10] = [
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
];

/// One processor, as read once per process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    /// Marketing name (`model name` in `/proc/cpuinfo`), or the architecture where none is given.
    pub model: String,
    /// Logical cores this process may use.
    pub cores: usize,
    /// The extensions of [`FEATURES`] the processor has.
    pub features: Vec<String>,
}

impl Cpu {
    /// The processor this process runs on.
    pub fn get() -> &'static Cpu {
        static CPU: OnceLock<Cpu> = OnceLock::new();
        CPU.get_or_init(|| {
            let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            Cpu::from_cpuinfo(&cpuinfo, cores)
        })
    }

    /// Parses the first processor of a `/proc/cpuinfo` text.
    pub fn from_cpuinfo(cpuinfo: &str, cores: usize) -> Cpu {
        let field = |name: &str| {
            cpuinfo.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_owned())
            })
        };
        let flags = field("flags").unwrap_or_default();
        let flags: Vec<&str> = flags.split_whitespace().collect();
        Cpu {
            model: field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_owned()),
            cores,
            features: FEATURES
                .iter()
                .filter(|f| flags.contains(f))
                .map(|f| (*f).to_owned())
                .collect(),
        }
    }

    /// One line: `Intel(R) Xeon(R) Processor, 2 cores, avx2 fma avx512f ...`.
    pub fn describe(&self) -> String {
        let features = if self.features.is_empty() {
            "no AVX2".to_owned()
        } else {
            self.features.join(" ")
        };
        format!("{}, {} cores, {features}", self.model, self.cores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_name_and_the_named_extensions_only() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n\
                    flags\t\t: fpu sse avx2 fma avx512f avx512bw avx512_vnni amx_tile amx_int8 sha_ni\n\n\
                    processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu\n";
        let cpu = Cpu::from_cpuinfo(text, 2);
        assert_eq!(cpu.model, "Intel(R) Xeon(R) Processor");
        assert_eq!(
            cpu.features,
            [
                "avx2",
                "fma",
                "avx512f",
                "avx512bw",
                "avx512_vnni",
                "amx_tile",
                "amx_int8"
            ]
        );
        assert_eq!(
            cpu.describe(),
            "Intel(R) Xeon(R) Processor, 2 cores, avx2 fma avx512f avx512bw avx512_vnni amx_tile amx_int8"
        );
    }

    #[test]
    fn a_text_without_fields_names_the_architecture() {
        let cpu = Cpu::from_cpuinfo("", 1);
        assert_eq!(cpu.model, std::env::consts::ARCH);
        assert!(cpu.describe().ends_with("no AVX2"));
    }
}
