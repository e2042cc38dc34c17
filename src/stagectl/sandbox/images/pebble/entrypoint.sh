#!/bin/sh
# Start pebble-challtestsrv (DNS: every name -> ACME_SERVER_IP) and pebble, with a TLS
# certificate for the ACME API made here (its CA in /run/pebble/api-ca.pem).
# With ACME_DNS01_ZONE set, also BIND on port 53: primary for that zone, which only the TSIG key
# made here (/run/pebble/dns01.key, BIND's syntax) may update, and a forwarder to
# challtestsrv for every other name; pebble then asks BIND.
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
dns=127.0.0.1:8053

zone=${ACME_DNS01_ZONE:-}
zone=${zone%.}
if [ -n "$zone" ]; then
  key=stagectl-sandbox-dns01
  data=$dir/named
  # named drops to user bind once port 53 is bound: the journal of the dynamic zone must be
  # written there, and the key read. Anew at each start, like the key: a journal left by a
  # `docker restart` would bring back the last run's records.
  rm -rf "$data"
  install -d -o bind -g bind -m 0750 "$data"
  (umask 027 && tsig-keygen -a hmac-sha256 "$key" > dns01.key)
  chgrp bind dns01.key
  # A zero negative TTL: a TXT record looked up before certbot adds it is not remembered as
  # missing by anyone who caches.
  cat > "$data/zone.db" <<ZONE
\$ORIGIN $zone.
\$TTL 0
@  SOA ns hostmaster 1 60 60 600 0
@  NS  ns
ns A   $ip
ZONE
  chown bind:bind "$data/zone.db"
  # check-names: the zone's own names (its SOA and NS host) start with "_acme-challenge".
  # No cache for forwarded answers (max-cache-ttl 0): challtestsrv's overrides (`acme.refuse`,
  # `acme.accept`) must reach pebble at once. challtestsrv's empty answers (AAAA, TXT, ...) carry
  # an SOA of another zone, which BIND rejects: pebble gets SERVFAIL for them, and Go's resolver
  # takes the A records alone; servfail-ttl 0 keeps even that from being remembered.
  # No DNSSEC: nothing here is signed. rndc off. A small cache: the container has 128 MB.
  cat > named.conf <<CONF
include "$dir/dns01.key";
options {
  directory "$data";
  pid-file none;
  session-keyfile "$data/session.key";
  listen-on port 53 { any; };
  listen-on-v6 { none; };
  allow-query { any; };
  recursion yes;
  allow-recursion { any; };
  forwarders { 127.0.0.1 port 8053; };
  forward only;
  dnssec-validation no;
  max-cache-ttl 0;
  max-ncache-ttl 0;
  servfail-ttl 0;
  max-cache-size 8m;
  notify no;
};
controls { };
logging {
  channel to_stderr { stderr; severity warning; print-category yes; print-severity yes; };
  channel updates { stderr; severity info; print-category yes; };
  category default { to_stderr; };
  category update { updates; };
  category update-security { updates; };
};
zone "$zone" {
  type primary;
  file "zone.db";
  check-names ignore;
  update-policy { grant $key name $zone. TXT; };
};
CONF
  named -f -u bind -c "$dir/named.conf" &
  named_pid=$!
  # Pebble starts once BIND serves the zone: a validation before would fail.
  tries=0
  until dig +short +norecurse +time=1 +tries=1 @127.0.0.1 SOA "$zone." | grep -q ' hostmaster\.'; do
    if ! kill -0 "$named_pid" 2>/dev/null; then
      echo "named exited at start (configuration: $dir/named.conf)" >&2
      exit 1
    fi
    tries=$((tries + 1))
    if [ "$tries" -ge 40 ]; then
      echo "named did not answer for $zone on 127.0.0.1:53 within 20 s" >&2
      exit 1
    fi
    sleep 0.5
  done
  dns=127.0.0.1:53
fi

exec pebble -config "$dir/config.json" -dnsserver "$dns"
