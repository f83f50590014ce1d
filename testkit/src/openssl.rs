//! The `openssl` CLI, the independent implementation remedy's certificate
//! code is checked against: [`openssl`] runs it, [`openssl_verify`] asks it
//! whether a certificate chains to a CA, and [`Lab`] is a directory with a
//! kubeadm-like CA (`CN=kubernetes`, PKCS#1 key) that signs leaves with the
//! extensions a test names.

use std::path::Path;
use std::process::Command;

/// Run `openssl` and return its stdout; a failure is a broken fixture.
pub fn openssl(args: &[&str]) -> String {
    run(None, args)
}

/// [`openssl`] in directory `dir`, so relative file names land there.
pub fn openssl_in(dir: &Path, args: &[&str]) -> String {
    run(Some(dir), args)
}

fn run(dir: Option<&Path>, args: &[&str]) -> String {
    let mut cmd = Command::new("openssl");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = cmd
        .args(args)
        .output()
        .expect("the openssl CLI is needed by the tests: run scripts/setup");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("openssl printed non-UTF-8")
}

/// `openssl verify -CAfile ca` on a certificate file: (success, output).
pub fn openssl_verify(ca_file: &str, cert_file: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["verify", "-CAfile", ca_file, cert_file])
        .output()
        .expect("the openssl CLI is needed by the tests: run scripts/setup");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A certificate and its key, as files in the lab directory and as bytes.
pub struct Pair {
    pub cert_file: String,
    pub key_file: String,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// A directory with a kubeadm-like CA (`CN=kubernetes`, PKCS#1 key).
pub struct Lab {
    dir: tempfile::TempDir,
    pub ca: Pair,
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Lab {
    pub fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("openssl.cnf"),
            "[req]\ndistinguished_name = dn\n[dn]\n\
             [v3_ca]\nbasicConstraints = critical,CA:TRUE\n\
             keyUsage = critical,digitalSignature,keyEncipherment,keyCertSign\n\
             subjectKeyIdentifier = hash\n",
        )
        .unwrap();
        let mut lab = Lab {
            dir,
            ca: Pair {
                cert_file: String::new(),
                key_file: String::new(),
                cert_pem: vec![],
                key_pem: vec![],
            },
        };
        lab.ca = lab.new_ca("ca", "kubernetes");
        lab
    }

    /// Absolute path of a file in the lab directory.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn genrsa(&self, key_file: &str) {
        openssl(&[
            "genrsa",
            "-traditional",
            "-out",
            &self.path(key_file),
            "2048",
        ]);
    }

    fn pair(&self, name: &str) -> Pair {
        let read = |f: &str| std::fs::read(Path::new(&self.path(f))).unwrap();
        let (cert_file, key_file) = (format!("{name}.crt"), format!("{name}.key"));
        Pair {
            cert_pem: read(&cert_file),
            key_pem: read(&key_file),
            cert_file,
            key_file,
        }
    }

    /// A self-signed CA as `kubeadm init` makes one.
    pub fn new_ca(&self, name: &str, cn: &str) -> Pair {
        self.genrsa(&format!("{name}.key"));
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-config",
            &self.path("openssl.cnf"),
            "-extensions",
            "v3_ca",
            "-key",
            &self.path(&format!("{name}.key")),
            "-subj",
            &format!("/CN={cn}"),
            "-days",
            "3650",
            "-sha256",
            "-out",
            &self.path(&format!("{name}.crt")),
        ]);
        self.pair(name)
    }

    /// A leaf signed by `ca`, with the extensions given in openssl's
    /// config syntax.
    pub fn leaf(&self, name: &str, subj: &str, ext: &str, ca: &Pair) -> Pair {
        self.genrsa(&format!("{name}.key"));
        let csr = self.path(&format!("{name}.csr"));
        openssl(&[
            "req",
            "-new",
            "-config",
            &self.path("openssl.cnf"),
            "-key",
            &self.path(&format!("{name}.key")),
            "-subj",
            subj,
            "-out",
            &csr,
        ]);
        let ext_file = self.write(&format!("{name}.ext"), ext.as_bytes());
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &self.path(&ca.cert_file),
            "-CAkey",
            &self.path(&ca.key_file),
            "-CAcreateserial",
            "-CAserial",
            &self.path(&format!("{name}.srl")),
            "-days",
            "365",
            "-sha256",
            "-extfile",
            &ext_file,
            "-out",
            &self.path(&format!("{name}.crt")),
        ]);
        self.pair(name)
    }

    /// Like etcd's peer certificate: server and client auth, DNS and IP
    /// SANs (IPv4 and IPv6), and an O.
    pub fn etcd_peer(&self) -> Pair {
        self.leaf(
            "peer",
            "/O=system:masters/CN=cp1",
            "basicConstraints = critical,CA:FALSE\n\
             keyUsage = critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage = serverAuth,clientAuth\n\
             authorityKeyIdentifier = keyid\n\
             subjectAltName = DNS:cp1,DNS:localhost,IP:192.168.56.10,IP:127.0.0.1,IP:::1\n",
            &self.ca,
        )
    }

    /// Like the client certificate in kubeadm's admin.conf.
    pub fn admin(&self) -> Pair {
        self.leaf(
            "admin",
            "/O=kubeadm:cluster-admins/CN=kubernetes-admin",
            "basicConstraints = critical,CA:FALSE\n\
             keyUsage = critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage = clientAuth\n\
             authorityKeyIdentifier = keyid\n",
            &self.ca,
        )
    }
}
