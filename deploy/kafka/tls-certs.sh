#!/usr/bin/env bash
# Development TLS material for the broker's optional TLS listeners (deploy/kafka/ssl.properties.in):
#
#   deploy/kafka/tls-certs.sh DIR
#
# writes into DIR (idempotent: nothing is made again while DIR/ca.pem exists)
#   ca.pem            the development CA that clients trust (ssl_cafile)
#   other-ca.pem      a second CA that signed nothing the broker presents (tests of an unknown CA)
#   broker.p12        the broker's key and certificate (SAN DNS:localhost, IP:127.0.0.1), valid 10 years from now
#   wrong-host.p12    a certificate for DNS:wrong-host.invalid only (tests of a host name mismatch)
#   expired.p12       a certificate for localhost/127.0.0.1 that expired on 2020-01-02 (tests of expiry)
#   client.pem, client.key   a client certificate signed by the CA (for listeners that require one)
# PKCS12 keystores have the password "rnnwatch-dev-tls". Development only: the CA key is in DIR/ca.key.
# Needs openssl. Failures print one line starting with "tls-certs.sh: error:".
set -euo pipefail

die() { echo "tls-certs.sh: error: $*" >&2; exit 1; }

dir="${1:-}"
[[ -n "$dir" ]] || die "usage: $0 DIR"
command -v openssl >/dev/null 2>&1 || die "openssl is not installed (needed to make the development TLS certificates)"
[[ -f "$dir/ca.pem" ]] && exit 0
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
work="$(mktemp -d "$dir/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
PASS=rnnwatch-dev-tls
log="$dir/openssl.log"
: >"$log"

run() { "$@" >>"$log" 2>&1 || die "openssl failed: $* (details: $log)"; }

key() { run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

ca() {  # ca NAME SUBJECT: a self-signed CA valid 10 years
  key "$work/$1.key"
  run openssl req -x509 -new -key "$work/$1.key" -subj "$2" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$work/$1.pem"
}

# openssl ca rather than x509 -req: it can set an arbitrary validity window (the expired certificate).
mkdir -p "$work/db"
: >"$work/db/index.txt"
echo 1000 >"$work/db/serial"
cat >"$work/ca.cnf" <<CNF
[ca]
default_ca = dev
[dev]
database = $work/db/index.txt
serial = $work/db/serial
new_certs_dir = $work/db
certificate = $work/ca.pem
private_key = $work/ca.key
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = \$ENV::SAN
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
CNF

leaf() {  # leaf NAME CN SAN EXTENSIONS [START END]: valid from now for 10 years unless START and END are given
  key "$work/$1.key"
  run openssl req -new -key "$work/$1.key" -subj "/CN=$2" -out "$work/$1.csr"
  local validity=(-days 3650)
  [[ $# -ge 6 ]] && validity=(-startdate "$5" -enddate "$6")
  SAN="$3" run openssl ca -batch -notext -config "$work/ca.cnf" -extensions "$4" "${validity[@]}" \
    -in "$work/$1.csr" -out "$work/$1.pem"
}

keystore() {  # keystore NAME: PKCS12 with the key, the certificate and the CA
  run openssl pkcs12 -export -name broker -inkey "$work/$1.key" -in "$work/$1.pem" -certfile "$work/ca.pem" \
    -passout "pass:$PASS" -out "$work/$1.p12"
  mv "$work/$1.p12" "$dir/$1.p12"
}

ca ca "/CN=rnnwatch development CA"
ca other-ca "/CN=rnnwatch unrelated CA"
leaf broker localhost "DNS:localhost,IP:127.0.0.1" server
leaf wrong-host wrong-host.invalid "DNS:wrong-host.invalid" server
leaf expired localhost "DNS:localhost,IP:127.0.0.1" server 20200101000000Z 20200102000000Z
leaf client rnnwatch-client "DNS:rnnwatch-client" client
keystore broker
keystore wrong-host
keystore expired
cp "$work/client.pem" "$work/client.key" "$work/other-ca.pem" "$work/ca.key" "$dir/"
mv "$work/ca.pem" "$dir/ca.pem"  # last: its presence means the directory is complete
