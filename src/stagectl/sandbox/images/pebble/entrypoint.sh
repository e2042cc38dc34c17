#!/bin/sh
# Start pebble-challtestsrv (DNS: every name -> ACME_SERVER_IP) and pebble, with a TLS
# certificate for the ACME API made here (its CA in /run/pebble/api-ca.pem).
set -eu
: "${ACME_SERVER_IP:?set ACME_SERVER_IP to the address every name must resolve to}"
dir=/run/pebble
mkdir -p "$dir"
cd "$dir"
name=$(hostname)
ip=$(hostname -i | awk '{print $1}')
printf '[req]\ndistinguished_name = dn\n[dn]\n' > openssl.cnf
openssl req -config openssl.cnf -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -days 30 -subj "/CN=stagectl sandbox ACME API CA" -keyout api-ca.key -out api-ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -config openssl.cnf -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -days 30 -subj "/CN=$name" -CA api-ca.pem -CAkey api-ca.key -keyout api.key -out api.pem \
  -addext "subjectAltName=DNS:$name,IP:$ip" -addext "basicConstraints=critical,CA:FALSE" \
  -addext "keyUsage=critical,digitalSignature" -addext "extendedKeyUsage=serverAuth" 2>/dev/null
cat > config.json <<JSON
{"pebble": {"listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
  "certificate": "$dir/api.pem", "privateKey": "$dir/api.key",
  "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
pebble-challtestsrv -defaultIPv4 "$ACME_SERVER_IP" -defaultIPv6 "" -dns01 127.0.0.1:8053 \
  -http01 "" -https01 "" -tlsalpn01 "" -management 127.0.0.1:8055 &
exec pebble -config "$dir/config.json" -dnsserver 127.0.0.1:8053
