# RouterOS commands for the office router, made by kentongan-pbx mikrotik-script.
# Paste into a terminal (or /import the file); running them again replaces the earlier rules.
# The SIP helper (ALG) rewrites SIP and breaks registrations and audio: turn it off.
/ip firewall service-port set sip disabled=yes
# The trusted LAN, for the router's own filter rules (the PBX keeps its own list).
/ip firewall address-list remove [find where list="kentongan-trusted"]
/ip firewall address-list add list=kentongan-trusted address=192.168.88.0/24 comment="kentongan: trusted LAN"
# SIP and RTP from the Internet to the PBX at 192.168.88.10; the default configuration's forward
# chain accepts what dst-nat let in.
/ip firewall nat remove [find where comment~"^kentongan:"]
/ip firewall nat add chain=dstnat in-interface-list=WAN protocol=udp dst-port=5060 action=dst-nat to-addresses=192.168.88.10 comment="kentongan: SIP over UDP"
/ip firewall nat add chain=dstnat in-interface-list=WAN protocol=tcp dst-port=5060,5061 action=dst-nat to-addresses=192.168.88.10 comment="kentongan: SIP over TCP/TLS"
/ip firewall nat add chain=dstnat in-interface-list=WAN protocol=udp dst-port=10000-20000 action=dst-nat to-addresses=192.168.88.10 comment="kentongan: RTP"
