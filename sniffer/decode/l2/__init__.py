"""Rare link layers and shims, one small module per family (Zeek's packet analyzers).

Each module registers its functions in `sniffer.decode.links` (``@register_linktype`` /
``@register_ethertype``) and follows the Zeek analyzer of the same name in
``src/packet_analysis/protocol/`` and its dispatch table in ``scripts/base/packet-protocols/``:
the same header checks, the same weird names (raised as ``LinkAnomaly``), and only the
next protocols Zeek registers for that analyzer.

======================  ======================================================================
`.ethernet`             802.3 length frames (LLC, SNAP, Novell raw), Cisco FabricPath (0x8903),
                        802.1ah PBB (0x88e7), VN-Tag (0x8926); ``ethernet_at`` for inner frames
`.mpls`                 MPLS label stacks (0x8847, 0x8848)
`.ppp`                  PPP (LINKTYPE 9), PPP in HDLC framing (50), PPPoE session (0x8864),
                        Cisco HDLC (104)
`.fddi`                 FDDI (LINKTYPE 10)
`.ieee802_11`           IEEE 802.11 (LINKTYPE 105), with radiotap (127)
`.nflog`                Linux NFLOG (LINKTYPE 239)
======================  ======================================================================
"""
