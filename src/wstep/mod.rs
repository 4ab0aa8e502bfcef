//! MS-WSTEP messages (SOAP 1.2 / WS-Trust), shared by the client and the CA.
