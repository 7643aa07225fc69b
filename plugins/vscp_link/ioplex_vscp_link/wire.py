"""The fixed strings of the VSCP tcp/ip link protocol and its command names.

Every reply string is vscpd's (``tcpipsrv.h``), byte for byte, typos included
(``sen this event``): clients match on them. Lines end in CRLF going out; a bare LF is
accepted coming in.
"""

from __future__ import annotations

CRLF = b"\r\n"

OK = b"+OK - Success.\r\n"
GOODBYE = b"+OK - Connection closed by client.\r\n"
USERNAME_OK = b"+OK - User name accepted, password please\r\n"
QUEUE_CLEARED = b"+OK - All events cleared.\r\n"
RECEIVE_LOOP = b"+OK - Receive loop entered. QUITLOOP to terminate.\r\n"
QUIT_LOOP = b"+OK - Quit receive loop.\r\n"
KEEPALIVE = b"+OK\r\n"
ERROR = b"-OK - Error\r\n"
UNKNOWN_COMMAND = b"-OK - Unknown command\r\n"
PARAMETER_ERROR = b"-OK - Invalid parameter or format\r\n"
BUFFER_FULL = b"-OK - Buffer Full\r\n"
NO_MSG = b"-OK - No event(s) available\r\n"
PASSWORD_ERROR = b"-OK - Invalid username or password.\r\n"
NOT_ACCREDITED = b"-OK - Need to log in to perform this command.\r\n"
NEED_USERNAME = b"-OK - Need a Username before a password can be entered.\r\n"
INVALID_REMOTE = b"-OK - Invalid or unknown peer.\r\n"
NO_RIGHTS = b"-OK - User does not have rights to perform this operation.\r\n"
NOT_ALLOWED_TO_SEND = b"-OK - Not allowed to sen this event (contact admin).\r\n"
INTERFACE_NOT_FOUND = b"-OK - Interface not found.\r\n"
NOT_SUPPORTED = b"-OK - Not supported\r\n"
BINARY_NOT_SUPPORTED = b"-OK - Binary mode not supported\r\n"

PROTOCOL_VERSION = (15, 1, 1, 0)
"""The vscpd release whose link protocol this implements; VERS reports it (clients compare
it, and vscpd's own C client needs at least three fields)."""

# Each command's canonical name by every alias (whole first word, any case).
COMMANDS: dict[str, str] = {
    "NOOP": "NOOP",
    "QUIT": "QUIT",
    "EXIT": "QUIT",
    "USER": "USER",
    "PASS": "PASS",
    "CHALLENGE": "CHALLENGE",
    "SEND": "SEND",
    "RETR": "RETR",
    "RETRIEVE": "RETR",
    "RCVLOOP": "RCVLOOP",
    "RECEIVELOOP": "RCVLOOP",
    "QUITLOOP": "QUITLOOP",
    "CDTA": "CDTA",
    "CHKDATA": "CDTA",
    "CHECKDATA": "CDTA",
    "CLRA": "CLRA",
    "CLRALL": "CLRA",
    "CLEARALL": "CLRA",
    "STAT": "STAT",
    "INFO": "INFO",
    "CHID": "CHID",
    "GETCHID": "CHID",
    "SGID": "SGID",
    "SETGUID": "SGID",
    "GGID": "GGID",
    "GETGUID": "GGID",
    "VERS": "VERS",
    "VERSION": "VERS",
    "SFLT": "SFLT",
    "SETFILTER": "SFLT",
    "SMSK": "SMSK",
    "SETMASK": "SMSK",
    "WCYD": "WCYD",
    "WHATCANYOUDO": "WCYD",
    "INTERFACE": "INTERFACE",
    "CLIENT": "INTERFACE",
    "HELP": "HELP",
    "TEST": "TEST",
    "BINARY": "BINARY",
}

KNOWN = frozenset(COMMANDS.values())

NO_LOGIN_NEEDED = frozenset(
    {"NOOP", "QUIT", "USER", "PASS", "CHALLENGE", "QUITLOOP", "VERS", "WCYD", "HELP", "BINARY"}
)
"""Commands a client may give before logging in; every other one needs a login."""

HELP = (
    "Help for the VSCP tcp/ip link interface (ioplex)\r\n"
    "NOOP              - No operation.\r\n"
    "QUIT/EXIT         - Close the connection.\r\n"
    "USER name         - Username for login.\r\n"
    "PASS password     - Password for login.\r\n"
    "CHALLENGE [token] - Get a session id.\r\n"
    "SEND event        - Send an event: head,class,type,obid,datetime,timestamp,GUID,data...\r\n"
    "RETR [n]          - Retrieve n (default 1) events from the input queue.\r\n"
    "RCVLOOP           - Receive events as they arrive until QUITLOOP.\r\n"
    "QUITLOOP          - Leave the receive loop.\r\n"
    "CDTA/CHKDATA      - Number of events in the input queue.\r\n"
    "CLRA/CLRALL       - Clear the input queue.\r\n"
    "STAT              - Statistics of this channel.\r\n"
    "INFO              - Status of this channel.\r\n"
    "CHID/GETCHID      - Channel id.\r\n"
    "SGID/SETGUID guid - Set the GUID of this channel.\r\n"
    "GGID/GETGUID      - GUID of this channel.\r\n"
    "VERS/VERSION      - Protocol version.\r\n"
    "SFLT/SETFILTER    - Set the filter: priority,class,type,GUID.\r\n"
    "SMSK/SETMASK      - Set the mask: priority,class,type,GUID.\r\n"
    "WCYD/WHATCANYOUDO - Server capabilities.\r\n"
    "INTERFACE LIST    - List the interfaces.\r\n"
    "HELP              - This text.\r\n"
).encode("ascii")

# WCYD: the 64-bit capability word of CLASS2.PROTOCOL type 20, most significant byte first.
CAPABILITY_INTERFACE = 1 << 61
CAPABILITY_TCPIP = 1 << 15
CAPABILITY_IP6 = 1 << 6
CAPABILITY_IP4 = 1 << 5


def capabilities_line(word: int) -> bytes:
    return "-".join(f"{b:02X}" for b in word.to_bytes(8, "big")).encode("ascii") + CRLF


def split_command(line: str) -> tuple[str, str]:
    """(canonical command or the upper-cased unknown word, argument) of a command line."""
    word, _, arg = line.partition(" ")
    if "\t" in word:
        word, _, rest = word.partition("\t")
        arg = (rest + " " + arg).strip()
    word = word.upper()
    return COMMANDS.get(word, word), arg.strip()


def is_status(line: bytes) -> bool:
    """Whether a reply line ends a reply (``+OK`` or ``-OK``)."""
    return line[:3] in (b"+OK", b"-OK")
