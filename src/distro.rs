//! Distribution families: how to detect them from os-release and what each needs to boot systemd.
//!
//! Pure facts, no I/O: the gateway reads `/etc/os-release` from the base
//! image and hands the text to [`Family::from_os_release`].

use crate::model::PackageManager;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// Debian, Ubuntu and derivatives (apt).
    Debian,
    /// Fedora, RHEL, CentOS, Rocky, Alma (dnf).
    Fedora,
    /// openSUSE and SLE (zypper).
    Suse,
    /// Arch Linux (pacman).
    Arch,
}

impl Family {
    pub const ALL: [Family; 4] = [Family::Debian, Family::Fedora, Family::Suse, Family::Arch];

    /// The family named on the command line (`--distro`): a family name or a distro ID.
    pub fn from_name(name: &str) -> Option<Family> {
        Family::from_ids(&[name.trim().to_ascii_lowercase().as_str()])
    }

    /// Detects the family from the text of an os-release file (`ID`, then `ID_LIKE`).
    pub fn from_os_release(text: &str) -> Option<Family> {
        let field = |key: &str| -> Option<String> {
            text.lines().find_map(|line| {
                let value = line.trim().strip_prefix(key)?.strip_prefix('=')?;
                Some(
                    value
                        .trim()
                        .trim_matches(|c| c == '"' || c == '\'')
                        .to_ascii_lowercase(),
                )
            })
        };
        let mut ids = Vec::new();
        if let Some(id) = field("ID") {
            ids.push(id);
        }
        if let Some(like) = field("ID_LIKE") {
            ids.extend(like.split_whitespace().map(str::to_string));
        }
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        Family::from_ids(&ids)
    }

    fn from_ids(ids: &[&str]) -> Option<Family> {
        ids.iter().find_map(|id| match *id {
            "debian" | "ubuntu" | "raspbian" | "linuxmint" | "devuan" | "kali" | "pop" => {
                Some(Family::Debian)
            }
            "fedora" | "rhel" | "centos" | "rocky" | "almalinux" | "ol" | "amzn" | "redhat" => {
                Some(Family::Fedora)
            }
            "suse" | "opensuse" | "opensuse-leap" | "opensuse-tumbleweed" | "sles" | "sled" => {
                Some(Family::Suse)
            }
            "arch" | "archlinux" | "manjaro" | "endeavouros" => Some(Family::Arch),
            _ => None,
        })
    }

    /// The family whose package manager is `manager`.
    pub fn of_manager(manager: PackageManager) -> Family {
        match manager {
            PackageManager::Apt => Family::Debian,
            PackageManager::Dnf => Family::Fedora,
            PackageManager::Zypper => Family::Suse,
            PackageManager::Pacman => Family::Arch,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Debian => "debian",
            Family::Fedora => "fedora",
            Family::Suse => "suse",
            Family::Arch => "arch",
        }
    }

    pub fn package_manager(self) -> PackageManager {
        match self {
            Family::Debian => PackageManager::Apt,
            Family::Fedora => PackageManager::Dnf,
            Family::Suse => PackageManager::Zypper,
            Family::Arch => PackageManager::Pacman,
        }
    }

    /// Packages that give a bootable systemd with `/sbin/init`.
    pub fn systemd_packages(self) -> &'static [&'static str] {
        match self {
            Family::Debian => &["systemd", "systemd-sysv", "dbus"],
            Family::Fedora => &["systemd"],
            Family::Suse => &["systemd", "systemd-sysvinit"],
            Family::Arch => &["systemd", "systemd-sysvcompat"],
        }
    }

    /// The systemd binary, for images without `/sbin/init`.
    pub fn systemd_binary(self) -> &'static str {
        match self {
            Family::Debian => "/lib/systemd/systemd",
            _ => "/usr/lib/systemd/systemd",
        }
    }

    /// Whether the distribution ships a unit that regenerates missing SSH host keys.
    pub fn has_ssh_keygen_unit(self) -> bool {
        !matches!(self, Family::Debian)
    }

    /// Units masked in every image: container-hostile on every engine (docs/contract.md, the core mask list).
    pub fn core_masks(self) -> Vec<&'static str> {
        vec![
            "systemd-udevd.service",
            "systemd-udevd-control.socket",
            "systemd-udevd-kernel.socket",
            "systemd-udev-trigger.service",
            "systemd-udev-settle.service",
            "getty.target",
            "console-getty.service",
            "systemd-remount-fs.service",
            "dev-hugepages.mount",
            "sys-fs-fuse-connections.mount",
            "systemd-random-seed.service",
            "systemd-machine-id-commit.service",
        ]
    }

    /// Units masked by default for workloads moved out of VMs (docs/contract.md, the VM-migration mask list).
    pub fn vm_migration_masks(self) -> Vec<&'static str> {
        let mut units = vec![
            "sys-kernel-config.mount",
            "sys-kernel-debug.mount",
            "sys-kernel-tracing.mount",
            "proc-sys-fs-binfmt_misc.automount",
            "proc-sys-fs-binfmt_misc.mount",
            "systemd-binfmt.service",
            "systemd-modules-load.service",
            "systemd-sysctl.service",
            "systemd-firstboot.service",
            "tmp.mount",
            "systemd-networkd.service",
            "systemd-networkd.socket",
            "systemd-networkd-wait-online.service",
            "NetworkManager.service",
            "NetworkManager-wait-online.service",
            "systemd-resolved.service",
            "systemd-timesyncd.service",
            "auditd.service",
            "systemd-journald-audit.socket",
            "fstrim.timer",
            "e2scrub_all.timer",
            "e2scrub_reap.service",
            "lvm2-monitor.service",
            "multipathd.service",
            "mdmonitor.service",
            "smartd.service",
            "kdump.service",
            "irqbalance.service",
            "tuned.service",
        ];
        match self {
            Family::Debian => units.extend([
                "networking.service",
                "apt-daily.timer",
                "apt-daily-upgrade.timer",
                "unattended-upgrades.service",
                "motd-news.timer",
                "chrony.service",
                "ntp.service",
                "ntpsec.service",
            ]),
            Family::Fedora => units.extend(["dnf-makecache.timer", "chronyd.service"]),
            Family::Suse => units.extend(["chronyd.service", "wicked.service"]),
            Family::Arch => units.extend(["chronyd.service", "ntpd.service"]),
        }
        units
    }
}

/// Units that are never masked, whatever the lists say (docs/contract.md, "never masked").
pub fn never_mask(unit: &str) -> bool {
    const KEEP: [&str; 9] = [
        "systemd-tmpfiles-setup.service",
        "systemd-tmpfiles-setup-dev.service",
        "systemd-tmpfiles-setup-dev-early.service",
        "systemd-user-sessions.service",
        "dbus.socket",
        "dbus.service",
        "dbus-broker.service",
        "systemd-sysusers.service",
        "systemd-journal-flush.service",
    ];
    (unit.starts_with("systemd-journald") && unit != "systemd-journald-audit.socket")
        || KEEP.contains(&unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_families_from_os_release() {
        let debian =
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";
        assert_eq!(Family::from_os_release(debian), Some(Family::Debian));
        let rocky = "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n";
        assert_eq!(Family::from_os_release(rocky), Some(Family::Fedora));
        let mint = "ID=whatever\nID_LIKE=\"ubuntu debian\"\n";
        assert_eq!(Family::from_os_release(mint), Some(Family::Debian));
        let leap = "ID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\n";
        assert_eq!(Family::from_os_release(leap), Some(Family::Suse));
        assert_eq!(Family::from_os_release("ID=alpine\n"), None);
        assert_eq!(Family::from_name("Ubuntu"), Some(Family::Debian));
    }

    #[test]
    fn each_family_is_found_from_its_package_manager() {
        for family in Family::ALL {
            assert_eq!(Family::of_manager(family.package_manager()), family);
        }
    }

    #[test]
    fn never_masks_the_keep_list() {
        for family in Family::ALL {
            for unit in family
                .core_masks()
                .into_iter()
                .chain(family.vm_migration_masks())
            {
                assert!(
                    !never_mask(unit),
                    "{unit} is in a mask list and the keep list"
                );
            }
        }
        assert!(never_mask("systemd-journald.service"));
        assert!(never_mask("systemd-journald-dev-log.socket"));
        assert!(!never_mask("systemd-journald-audit.socket"));
    }
}
