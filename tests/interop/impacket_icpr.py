"""impacket (Fortra's DCE/RPC and Kerberos, the base of Certipy) against
autoenroll's MS-ICPR, for tests/rpc.rs.

  decode-request HEX      our CertServerRequest stub, read with impacket's
                          NDR definitions; prints its fields as JSON
  decode-response HEX     a CertServerRequest answer of our CA, read with
                          impacket's NDR definitions; prints it as JSON
  enroll HOST ADDR EPM CA TEMPLATE CSR
                          ept_map on ADDR:EPM, then CertServerRequest over
                          Kerberos (the ticket cache in KRB5CCNAME, its
                          host/HOST ticket) at packet privacy; prints the
                          answer as impacket decodes it, as JSON
"""

import base64
import json
import sys

from impacket.dcerpc.v5 import epm, icpr, transport
from impacket.dcerpc.v5.rpcrt import (
    RPC_C_AUTHN_GSS_NEGOTIATE,
    RPC_C_AUTHN_LEVEL_PKT_PRIVACY,
)


def blob(b):
    pb = b["pb"]
    return b"".join(pb) if pb else b""


def decode_request(hexed):
    req = icpr.CertServerRequest(bytes.fromhex(hexed))
    print(
        json.dumps(
            {
                "flags": req["dwFlags"],
                "authority": req["pwszAuthority"].rstrip("\x00"),
                "request_id": req["pdwRequestId"],
                "attributes": blob(req["pctbAttribs"]).decode("utf-16le").rstrip("\x00"),
                "attributes_cb": req["pctbAttribs"]["cb"],
                "request": base64.b64encode(blob(req["pctbRequest"])).decode(),
            }
        )
    )


def response_json(response):
    return {
        "disposition": response["pdwDisposition"],
        "request_id": response["pdwRequestId"],
        "certificate": base64.b64encode(blob(response["pctbEncodedCert"])).decode(),
        "chain": base64.b64encode(blob(response["pctbCert"])).decode(),
        "message": blob(response["pctbDispositionMessage"]).decode("utf-16le").rstrip("\x00"),
    }


def decode_response(hexed):
    print(json.dumps(response_json(icpr.CertServerRequestResponse(bytes.fromhex(hexed)))))


def enroll(host, addr, epm_port, ca, template, csr_path):
    mapper = transport.DCERPCTransportFactory("ncacn_ip_tcp:%s[%s]" % (addr, epm_port))
    dce = mapper.get_dce_rpc()
    dce.connect()
    binding = epm.hept_map(host, icpr.MSRPC_UUID_ICPR, protocol="ncacn_ip_tcp", dce=dce)
    dce.disconnect()
    port = int(binding.rsplit("[", 1)[1].rstrip("]"))

    rpc = transport.DCERPCTransportFactory("ncacn_ip_tcp:%s[%d]" % (host, port))
    rpc.setRemoteHost(addr)
    rpc.set_credentials("", "", "", "", "", None)
    rpc.set_kerberos(True, None)
    dce = rpc.get_dce_rpc()
    dce.set_auth_type(RPC_C_AUTHN_GSS_NEGOTIATE)
    dce.set_auth_level(RPC_C_AUTHN_LEVEL_PKT_PRIVACY)
    dce.connect()
    dce.bind(icpr.MSRPC_UUID_ICPR)

    with open(csr_path, "rb") as f:
        csr = f.read()
    attribs = ("CertificateTemplate:%s\x00" % template).encode("utf-16le")
    request = icpr.CertServerRequest()
    request["dwFlags"] = 0
    request["pwszAuthority"] = ca + "\x00"
    request["pdwRequestId"] = 0
    request["pctbAttribs"]["cb"] = len(attribs)
    request["pctbAttribs"]["pb"] = attribs
    request["pctbRequest"]["cb"] = len(csr)
    request["pctbRequest"]["pb"] = csr
    response = dce.request(request)
    answer = response_json(response)
    answer["port"] = port
    print(json.dumps(answer))
    dce.disconnect()


if __name__ == "__main__":
    if sys.argv[1] == "decode-request":
        decode_request(sys.argv[2])
    elif sys.argv[1] == "decode-response":
        decode_response(sys.argv[2])
    elif sys.argv[1] == "enroll":
        enroll(*sys.argv[2:8])
    else:
        sys.exit("unknown mode %r" % sys.argv[1])
