# RouterOS commands for the office router, made by kentongan-pbx mikrotik-script.
# Paste into a terminal (or /import the file); running them again replaces the earlier rules.
# The SIP helper (ALG) rewrites SIP and breaks registrations and audio: turn it off.
/ip firewall service-port set sip disabled=yes
# The trusted LAN, for the router's own filter rules (the PBX keeps its own list).
/ip firewall address-list remove [find where list="kentongan-trusted"]
/ip firewall address-list add list=kentongan-trusted address=10.20.0.0/16 comment="kentongan: trusted LAN"
/ip firewall address-list add list=kentongan-trusted address=172.16.5.0/24 comment="kentongan: trusted LAN"
/ipv6 firewall address-list remove [find where list="kentongan-trusted"]
/ipv6 firewall address-list add list=kentongan-trusted address=2001:db8:20::/48 comment="kentongan: trusted LAN"
# SIP and RTP from the Internet to the PBX at 10.20.0.5; the default configuration's forward
# chain accepts what dst-nat let in.
/ip firewall nat remove [find where comment~"^kentongan:"]
/ip firewall nat add chain=dstnat in-interface-list=internet protocol=udp dst-port=5060,5080 action=dst-nat to-addresses=10.20.0.5 comment="kentongan: SIP over UDP"
/ip firewall nat add chain=dstnat in-interface-list=internet protocol=udp dst-port=16384-32767 action=dst-nat to-addresses=10.20.0.5 comment="kentongan: RTP"
