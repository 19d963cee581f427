//! The network mode of a build step, defined once: the spec's `network`, the builder's
//! `force-network-mode` option, `sysfile llb --network` and the LLB exec op all use [`Network`].
//!
//! Pure data: this module imports nothing from the crate. `llb` turns it into the protobuf
//! `NetMode`.

/// Which network a build step runs with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Network {
    /// The builder's default: BuildKit's sandbox network, unless the builder forces a mode
    /// (`force-network-mode`, `docker build --network`). In LLB, `UNSET`.
    #[default]
    Default,
    /// No network at all.
    None,
    /// The host's network (needs the `exec.meta.network` cap and the builder's entitlement).
    Host,
}

impl Network {
    /// The names a builder uses (`force-network-mode`, `sysfile llb --network`): `host`,
    /// `none`, and `sandbox` (or `default`) for the builder's default. `None` for anything else.
    pub fn from_builder_name(name: &str) -> Option<Network> {
        match name {
            "host" => Some(Network::Host),
            "none" => Some(Network::None),
            "sandbox" | "default" => Some(Network::Default),
            _ => None,
        }
    }

    /// The mode a step runs with when the builder forces `forced` on the steps that chose none.
    pub fn or_forced(self, forced: Network) -> Network {
        match self {
            Network::Default => forced,
            chosen => chosen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_names() {
        assert_eq!(Network::from_builder_name("host"), Some(Network::Host));
        assert_eq!(Network::from_builder_name("none"), Some(Network::None));
        assert_eq!(
            Network::from_builder_name("sandbox"),
            Some(Network::Default)
        );
        assert_eq!(
            Network::from_builder_name("default"),
            Some(Network::Default)
        );
        assert_eq!(Network::from_builder_name("Host"), None);
        assert_eq!(Network::from_builder_name(""), None);
    }

    #[test]
    fn a_step_that_chose_a_network_keeps_it() {
        assert_eq!(Network::None.or_forced(Network::Host), Network::None);
        assert_eq!(Network::Default.or_forced(Network::Host), Network::Host);
        assert_eq!(
            Network::Default.or_forced(Network::Default),
            Network::Default
        );
    }
}
