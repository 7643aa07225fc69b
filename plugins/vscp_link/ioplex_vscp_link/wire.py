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
NOT_SUPPORTED_HERE = b"-OK - Command is not supported here.\r\n"
"""RESTART and SHUTDOWN, as the v15 tcp/ip server driver answers them."""

PROTOCOL_VERSION = (15, 1, 1, 0)
"""The vscpd release whose link protocol this implements; VERS reports it (clients compare
it, and vscpd's own C client needs at least three fields)."""

# The command words in the order vscpd tests them (``CTcpipSrv::commandHandler``), each
# with its canonical name. vscpd takes the first word the line *starts with*, case
# insensitive, and drops the word plus one separator character: ``nooper`` is NOOP and
# ``quitloop`` must come before ``quit``. Within one command the longer alias comes first
# here (vscpd tests ``retr`` before ``retrieve``, so its ``RETRIEVE 2`` reads the count
# from ``EVE 2``; this server reads 2).
COMMAND_ORDER: tuple[tuple[str, str], ...] = (
    ("NOOP", "NOOP"),
    ("RECEIVELOOP", "RCVLOOP"),
    ("RCVLOOP", "RCVLOOP"),
    ("QUITLOOP", "QUITLOOP"),
    ("USER", "USER"),
    ("PASS", "PASS"),
    ("CHALLENGE", "CHALLENGE"),
    ("QUIT", "QUIT"),
    ("EXIT", "QUIT"),
    ("SHUTDOWN", "SHUTDOWN"),
    ("SEND", "SEND"),
    ("RETRIEVE", "RETR"),
    ("RETR", "RETR"),
    ("CHECKDATA", "CDTA"),
    ("CHKDATA", "CDTA"),
    ("CDTA", "CDTA"),
    ("CLEARALL", "CLRA"),
    ("CLRALL", "CLRA"),
    ("CLRA", "CLRA"),
    ("STAT", "STAT"),
    ("INFO", "INFO"),
    ("GETCHID", "CHID"),
    ("CHID", "CHID"),
    ("SETGUID", "SGID"),
    ("SGID", "SGID"),
    ("GETGUID", "GGID"),
    ("GGID", "GGID"),
    ("VERSION", "VERS"),
    ("VERS", "VERS"),
    ("SETFILTER", "SFLT"),
    ("SFLT", "SFLT"),
    ("SETMASK", "SMSK"),
    ("SMSK", "SMSK"),
    ("HELP", "HELP"),
    ("RESTART", "RESTART"),
    ("INTERFACE", "INTERFACE"),
    ("CLIENT", "INTERFACE"),
    ("TEST", "TEST"),
    ("WHATCANYOUDO", "WCYD"),
    ("WCYD", "WCYD"),
    ("MEASUREMENT", "MEASUREMENT"),
    ("BINARY", "BINARY"),  # not in vscpd (the spec's binary mode; always refused here)
)
_LONGEST = max(len(word) for word, _ in COMMAND_ORDER)

COMMANDS: dict[str, str] = dict(COMMAND_ORDER)
"""Each command's canonical name by every alias."""

KNOWN = frozenset(COMMANDS.values())

NO_LOGIN_NEEDED = frozenset(
    {"NOOP", "QUIT", "USER", "PASS", "CHALLENGE", "QUITLOOP", "VERS", "WCYD", "HELP", "BINARY"}
)
"""Commands a client may give before logging in (as vscpd; every other one needs a login).
Their replies count against the connection's pre-login output budget."""

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
    "MEASUREMENT f,l,t,v[,unit,guid,sensor,zone,subzone,destguid] - Send a measurement.\r\n"
    "+ / +n            - Repeat the last / the n-th last command.\r\n"
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
    """(canonical command, argument) of a command line, matched as vscpd does: the first
    command word (in `COMMAND_ORDER`) the line starts with, any case; the argument is what
    follows the word and one separator character, trimmed. A line that starts with no
    command word gives its upper-cased first word and the rest."""
    head = line[:_LONGEST].upper()
    for word, command in COMMAND_ORDER:
        if head.startswith(word):
            return command, line[len(word) + 1 :].strip()
    word, _, arg = line.partition(" ")
    return word.upper(), arg.strip()


def is_status(line: bytes) -> bool:
    """Whether a reply line ends a reply (``+OK`` or ``-OK``)."""
    return line[:3] in (b"+OK", b"-OK")
