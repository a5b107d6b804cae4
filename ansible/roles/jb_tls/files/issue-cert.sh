#!/bin/sh
# issue-cert.sh CA_DIR OUT CN DAYS SANS EKU: an EC P-256 key and a certificate signed by the
# CA in CA_DIR, written to OUT.key and OUT.pem (OUT.pem last, so that it marks completion).
set -eu
ca_dir=$1 out=$2 cn=$3 days=$4 sans=$5 eku=$6
umask 077
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out.key"
openssl req -new -key "$out.key" -subj "/CN=$cn" -out "$out.csr"
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
  "$eku" "$sans" >"$out.ext"
openssl x509 -req -in "$out.csr" -CA "$ca_dir/ca.pem" -CAkey "$ca_dir/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 -extfile "$out.ext" -out "$out.pem.tmp"
rm -f "$out.csr" "$out.ext"
mv "$out.pem.tmp" "$out.pem"
