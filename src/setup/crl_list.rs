//! CA_CRL as `install-crl` and `install-cert --new-ca` change it: each entry
//! of the list with the CRLs its file holds. A new CRL replaces only the entry
//! of its own CA (the CRLs of other CAs in CA_CRT stay, in order) or is
//! appended; it is refused when older than the installed CRL of its CA;
//! a new CA drops the entries whose CRLs no CA of the new CA_CRT signed.
//! Whose a CRL is, is told by its signature (which CA of CA_CRT has the key
//! that verifies it), as the proxy's load tells it, never by its issuer's
//! name: orca-catool's CAs of one clinic often share a name, and each
//! numbers its CRLs from 1.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use x509_parser::num_bigint::BigUint;

use super::fsutil::Root;
use super::nofollow::read_regular;

/// What decides which of two CRLs of one CA is newer.
pub(super) struct Crl {
    issuer_raw: Vec<u8>,
    /// the issuer, OpenSSL one-line form
    pub(super) issuer: String,
    number: Option<BigUint>,
    this_update: i64,
    this_update_shown: String,
    der: Vec<u8>,
}

impl Crl {
    /// thisUpdate, as a Unix time.
    pub(super) fn this_update(&self) -> i64 {
        self.this_update
    }

    /// The facts of one CRL; `None` when it cannot be parsed.
    pub(super) fn of(der: &CertificateRevocationListDer<'_>) -> Option<Crl> {
        let (_, parsed) = x509_parser::parse_x509_crl(der.as_ref()).ok()?;
        Some(Crl {
            issuer_raw: parsed.issuer().as_raw().to_vec(),
            issuer: crate::x509::oneline(parsed.issuer()),
            number: parsed.crl_number().cloned(),
            this_update: parsed.last_update().timestamp(),
            this_update_shown: parsed.last_update().to_string(),
            der: der.as_ref().to_vec(),
        })
    }

    /// Which is newer: by CRL number when both have one, else by thisUpdate.
    fn cmp_age(&self, other: &Crl) -> Ordering {
        match (&self.number, &other.number) {
            (Some(a), Some(b)) => a.cmp(b),
            _ => self.this_update.cmp(&other.this_update),
        }
    }

    /// A tag for a file name that tells this CRL from its predecessors: its
    /// CRL number, or without one its thisUpdate as Unix seconds.
    pub(super) fn name_tag(&self) -> String {
        match &self.number {
            Some(n) => n.to_string(),
            None => format!("t{}", self.this_update),
        }
    }

    /// "CRL number 5" or "thisUpdate …", whichever [`Crl::cmp_age`] went by against `other`.
    fn age(&self, other: &Crl) -> String {
        match (&self.number, &other.number) {
            (Some(n), Some(_)) => format!("CRL number {n}"),
            _ => format!("thisUpdate {}", self.this_update_shown),
        }
    }
}

/// One entry of CA_CRL.
pub(super) struct Entry {
    /// as written in the config
    pub(super) raw: String,
    /// the system path it names
    pub(super) path: PathBuf,
    /// the CRLs of its file, or why they cannot be read (the load says so later)
    pub(super) crls: Result<Vec<Crl>, String>,
}

/// The entries of the CA_CRL now in `config_text`, in order, read under `root`
/// without following links.
pub(super) fn entries(root: &Root, config_text: &str, config_path: &Path) -> Vec<Entry> {
    let raw = crate::config::parse_raw(config_text, config_path);
    let Some(value) = raw.entries.iter().rev().find(|e| e.key == "CA_CRL") else {
        return Vec::new();
    };
    let dir = config_path.parent().unwrap_or(Path::new("/"));
    let mut out: Vec<Entry> = Vec::new();
    for item in value.value.split(',').map(str::trim) {
        if item.is_empty() || out.iter().any(|e| e.raw == item) {
            continue;
        }
        let path = dir.join(item);
        let crls = read_regular(&root.path(&path), &path).and_then(|data| {
            let data = data.ok_or_else(|| format!("{} does not exist", path.display()))?;
            let ders = crate::tls::load::parse_crls(&path, &data)
                .map_err(|e| format!("{}: {}", path.display(), e.problem))?;
            ders.iter()
                .map(|d| Crl::of(d).ok_or_else(|| format!("{}: not a CRL", path.display())))
                .collect()
        });
        out.push(Entry {
            raw: item.to_string(),
            path,
            crls,
        });
    }
    out
}

/// What a new CRL file is, next to the installed ones.
pub(super) enum Verdict {
    /// every CRL of it is installed already, in these entries
    Installed(Vec<PathBuf>),
    /// it may go in
    Newer,
}

/// Which CA of `cas` (CA_CRT) signed `crl`, by its key: its index, or
/// `None` when none did. Two CAs of one name are two; two certificates of
/// one CA (one name, one key) are one.
fn signer(crl: &Crl, cas: &[CertificateDer<'_>]) -> Option<usize> {
    crate::tls::crl::signer_of(&crl.der, cas)
}

/// Compares each new CRL with the installed CRL of its CA (the CA of `cas`
/// that signed it): any older one, or one of the same number with other
/// content, is refused (the reason names both files); all already there is
/// [`Verdict::Installed`]. The CRLs of another CA of the same name are not
/// compared: each CA numbers its own.
pub(super) fn judge(
    new: &[Crl],
    new_shown: &str,
    entries: &[Entry],
    cas: &[CertificateDer<'_>],
) -> Result<Verdict, String> {
    let mut same = Vec::new();
    let mut newer = false;
    for n in new {
        let ca = signer(n, cas);
        let installed = entries.iter().find_map(|e| {
            let crls = e.crls.as_ref().ok()?;
            crls.iter()
                .find(|c| ca.is_some() && signer(c, cas) == ca)
                .map(|c| (e, c))
        });
        let Some((entry, old)) = installed else {
            newer = true;
            continue;
        };
        if old.der == n.der {
            same.push(entry.path.clone());
            continue;
        }
        let shown = entry.path.display();
        match n.cmp_age(old) {
            Ordering::Greater => newer = true,
            Ordering::Less => {
                return Err(format!(
                    "the CRL of {} in {new_shown} ({}) is older than the installed {shown} ({}): install the newest CRL from orca-catool issue_crl",
                    n.issuer,
                    n.age(old),
                    old.age(n)
                ));
            }
            Ordering::Equal => {
                return Err(format!(
                    "the CRL of {} in {new_shown} has the same {} as the installed {shown} but other content: make a new one with orca-catool issue_crl",
                    n.issuer,
                    n.age(old)
                ));
            }
        }
    }
    if newer {
        return Ok(Verdict::Newer);
    }
    same.dedup();
    Ok(Verdict::Installed(same))
}

/// An entry of CA_CRL that a new CRL replaces.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Replaced {
    /// the file
    pub(super) path: PathBuf,
    /// its CRLs are signed by no CA of CA_CRT but carry the name of the
    /// new CRL's CA: an old CA's of that name, which the proxy refuses
    pub(super) old_ca: bool,
}

/// CA_CRL with `target` (holding `new`) in place of the entries of its CAs
/// (the CAs of `cas` whose keys signed `new`), where the first of them was,
/// or at the end; and the entries it replaced. An entry that no CA of `cas`
/// signed but of the name of a new CRL's CA is replaced too: the proxy
/// refuses it, so it cannot stay. An entry holding CRLs of other CAs too
/// cannot be split and is refused.
pub(super) fn replace(
    entries: &[Entry],
    new: &[Crl],
    target: &Path,
    cas: &[CertificateDer<'_>],
) -> Result<(Vec<String>, Vec<Replaced>), String> {
    let new_cas: Vec<usize> = new.iter().filter_map(|n| signer(n, cas)).collect();
    let ours = |c: &Crl| match signer(c, cas) {
        Some(ca) => new_cas.contains(&ca),
        None => new.iter().any(|n| n.issuer_raw == c.issuer_raw),
    };
    let target_raw = target.display().to_string();
    let mut list: Vec<String> = Vec::new();
    let mut replaced = Vec::new();
    let place = |list: &mut Vec<String>| {
        if !list.contains(&target_raw) {
            list.push(target_raw.clone());
        }
    };
    for e in entries {
        if e.path == target {
            place(&mut list);
            continue;
        }
        // Unreadable entries are kept: the load of the new set says why.
        let Ok(crls) = &e.crls else {
            list.push(e.raw.clone());
            continue;
        };
        if crls.iter().all(ours) {
            place(&mut list);
            replaced.push(Replaced {
                path: e.path.clone(),
                old_ca: crls.iter().all(|c| signer(c, cas).is_none()),
            });
        } else if crls.iter().any(ours) {
            return Err(format!(
                "CA_CRL entry {} holds CRLs of other CAs too: split it into one file per CA, then install the new CRL",
                e.path.display()
            ));
        } else {
            list.push(e.raw.clone());
        }
    }
    place(&mut list);
    Ok((list, replaced))
}

/// CA_CRL without the entries whose CRLs are signed by no CA in `cas`; the
/// list and the removed entries with whose CRLs they hold. A CRL is a CA's
/// when that CA's key verifies it, as the proxy's load requires
/// ([`crate::tls::crl::check`]): by its issuer name alone, the CRL of an old
/// CA whose name the new CA shares (orca-catool's CAs of one clinic often
/// do) would be kept, and the proxy would refuse the whole set. Unreadable
/// entries are kept (the load of the new set says why).
pub(super) fn without_other_cas(
    entries: &[Entry],
    cas: &[CertificateDer<'_>],
) -> (Vec<String>, Vec<(PathBuf, String)>) {
    let subjects: Vec<Vec<u8>> = cas
        .iter()
        .filter_map(|c| x509_parser::parse_x509_certificate(c.as_ref()).ok())
        .map(|(_, c)| c.subject().as_raw().to_vec())
        .collect();
    let whose = |c: &Crl| {
        if subjects.contains(&c.issuer_raw) {
            format!(
                "the old CA {}, whose name the new CA shares but not its key",
                c.issuer
            )
        } else {
            c.issuer.clone()
        }
    };
    let mut list = Vec::new();
    let mut removed = Vec::new();
    for e in entries {
        match &e.crls {
            Ok(crls)
                if !crls
                    .iter()
                    .any(|c| crate::tls::crl::signed_by_one_of(&c.der, cas)) =>
            {
                let issuers: Vec<String> = crls.iter().map(whose).collect();
                removed.push((e.path.clone(), issuers.join(", ")));
            }
            _ => list.push(e.raw.clone()),
        }
    }
    (list, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA named `cn` and a function making its CRLs by CRL number.
    fn ca(cn: &str) -> (CertificateDer<'static>, impl Fn(u64) -> Crl) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let issuer = rcgen::Issuer::new(params, key);
        let crl = move |number: u64| {
            let now = time::OffsetDateTime::now_utc();
            let der = rcgen::CertificateRevocationListParams {
                this_update: now - time::Duration::hours(1),
                next_update: now + time::Duration::days(30),
                crl_number: rcgen::SerialNumber::from(number),
                issuing_distribution_point: None,
                revoked_certs: Vec::new(),
                key_identifier_method: rcgen::KeyIdMethod::Sha256,
            }
            .signed_by(&issuer)
            .unwrap()
            .der()
            .clone();
            Crl::of(&der).unwrap()
        };
        (cert.der().clone(), crl)
    }

    fn entry(raw: &str, crls: Vec<Crl>) -> Entry {
        Entry {
            raw: raw.to_string(),
            path: PathBuf::from(raw),
            crls: Ok(crls),
        }
    }

    #[test]
    fn a_crl_replaces_only_its_own_cas_entry_and_an_older_one_is_refused() {
        let (a_cert, a) = ca("a");
        let (b_cert, b) = ca("b");
        let cas = [a_cert, b_cert.clone()];
        let entries = vec![
            entry("/c/a-1.crl", vec![a(1)]),
            entry("/c/b-1.crl", vec![b(1)]),
            Entry {
                raw: "/c/gone.crl".to_string(),
                path: PathBuf::from("/c/gone.crl"),
                crls: Err("gone".to_string()),
            },
        ];
        let (list, replaced) = replace(&entries, &[a(2)], Path::new("/c/a-2.crl"), &cas).unwrap();
        assert_eq!(list, ["/c/a-2.crl", "/c/b-1.crl", "/c/gone.crl"]);
        assert_eq!(
            replaced,
            [Replaced {
                path: PathBuf::from("/c/a-1.crl"),
                old_ca: false
            }]
        );
        // A file of both CAs: the newer of one does not hide the older of the other.
        let both = [a(2), b(0)];
        let err = judge(&both, "new.crl", &entries, &cas).err().unwrap();
        assert!(
            err.contains("CRL number 0) is older than the installed /c/b-1.crl"),
            "{err}"
        );
        assert!(matches!(
            judge(&[a(2)], "n", &entries, &cas),
            Ok(Verdict::Newer)
        ));
        // An entry holding both CAs' CRLs cannot be split.
        let mixed = vec![entry("/c/ab.crl", vec![a(1), b(1)])];
        assert!(replace(&mixed, &[a(2)], Path::new("/c/a-2.crl"), &cas).is_err());
        // A new CA B: A's CRL leaves, B's and the unreadable one stay.
        let (list, removed) = without_other_cas(&entries, &[b_cert]);
        assert_eq!(list, ["/c/b-1.crl", "/c/gone.crl"]);
        assert_eq!(removed[0].0, PathBuf::from("/c/a-1.crl"));
        assert!(removed[0].1.contains("CN=a"), "{:?}", removed);
    }

    /// The regression of telling a CA's CRLs by the issuer's name: the CAs
    /// orca-catool makes for one clinic often share a name, and the old
    /// one's CRL was kept with the new CA (the proxy then refused the set).
    #[test]
    fn a_new_ca_of_the_old_ones_name_drops_the_old_cas_crl_and_keeps_its_own() {
        let (_, old) = ca("clinic-ca");
        let (new_cert, new) = ca("clinic-ca");
        let entries = vec![
            entry("/c/old.crl", vec![old(7)]),
            entry("/c/new.crl", vec![new(1)]),
        ];
        let (list, removed) = without_other_cas(&entries, &[new_cert]);
        assert_eq!(list, ["/c/new.crl"]);
        assert_eq!(removed.len(), 1, "{removed:?}");
        assert_eq!(removed[0].0, PathBuf::from("/c/old.crl"));
        assert_eq!(
            removed[0].1,
            "the old CA /CN=clinic-ca, whose name the new CA shares but not its key"
        );
    }

    /// The regression of telling the installed CRL of a CA by its issuer's
    /// name: with two CAs of one name in CA_CRT, each numbering its CRLs
    /// from 1, a CRL of one was judged older than the other's, or replaced
    /// both entries (and the other CA's revoked clients were let in).
    #[test]
    fn with_two_cas_of_one_name_a_crl_is_judged_by_and_replaces_its_own_cas_only() {
        let (first_cert, first) = ca("clinic-ca");
        let (second_cert, second) = ca("clinic-ca");
        let cas = [first_cert, second_cert];
        let only_first = vec![entry("/c/first-3.crl", vec![first(3)])];
        assert!(matches!(
            judge(&[second(1)], "n", &only_first, &cas),
            Ok(Verdict::Newer)
        ));
        let (list, replaced) = replace(
            &only_first,
            &[second(1)],
            Path::new("/c/second-1.crl"),
            &cas,
        )
        .unwrap();
        assert_eq!(list, ["/c/first-3.crl", "/c/second-1.crl"]);
        assert!(replaced.is_empty(), "{replaced:?}");
        let both = vec![
            entry("/c/first-1.crl", vec![first(1)]),
            entry("/c/second-4.crl", vec![second(4)]),
        ];
        let err = judge(&[second(3)], "n", &both, &cas).err().unwrap();
        assert!(
            err.contains("older than the installed /c/second-4.crl"),
            "{err}"
        );
        let (list, replaced) =
            replace(&both, &[first(2)], Path::new("/c/first-2.crl"), &cas).unwrap();
        assert_eq!(list, ["/c/first-2.crl", "/c/second-4.crl"]);
        assert_eq!(replaced.len(), 1, "{replaced:?}");
        // Of an old CA of the name, no longer in CA_CRT: the proxy refuses
        // it, so it is replaced and said to be the old CA's.
        let (_, old) = ca("clinic-ca");
        let with_old = vec![entry("/c/old-9.crl", vec![old(9)])];
        assert!(matches!(
            judge(&[first(1)], "n", &with_old, &cas),
            Ok(Verdict::Newer)
        ));
        let (list, replaced) =
            replace(&with_old, &[first(1)], Path::new("/c/first-1.crl"), &cas).unwrap();
        assert_eq!(list, ["/c/first-1.crl"]);
        assert_eq!(
            replaced,
            [Replaced {
                path: PathBuf::from("/c/old-9.crl"),
                old_ca: true
            }]
        );
    }
}
