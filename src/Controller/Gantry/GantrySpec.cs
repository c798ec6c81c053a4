using System.Globalization;

namespace SmpRobot.Controller.Gantry;

/// <summary>Which kind of gantry link a <see cref="GantrySpec"/> names.</summary>
public enum GantryLinkKind
{
    /// <summary>The simulated gantry in the controller's own process.</summary>
    Simulated,
    /// <summary>A serial port (or a pty).</summary>
    Serial,
    /// <summary>A TCP connection.</summary>
    Tcp,
}

/// <summary>
/// The <c>--gantry</c> option: <c>sim</c>, <c>serial:PATH[@BAUD]</c> (baud default 115200) or
/// <c>tcp:HOST:PORT</c>.
/// </summary>
public sealed record GantrySpec
{
    private GantrySpec(GantryLinkKind kind, string target, int number)
    {
        Kind = kind;
        Target = target;
        Number = number;
    }

    public GantryLinkKind Kind { get; }

    /// <summary>Device path (serial) or host (tcp); empty for sim.</summary>
    public string Target { get; }

    /// <summary>Baud rate (serial) or port (tcp); 0 for sim.</summary>
    public int Number { get; }

    /// <summary>Canonical text: "sim", "serial:PATH@BAUD", "tcp:HOST:PORT" (as the transports describe themselves).</summary>
    public string Description => Kind switch
    {
        GantryLinkKind.Serial => $"serial:{Target}@{Number.ToString(CultureInfo.InvariantCulture)}",
        GantryLinkKind.Tcp => $"tcp:{(Target.Contains(':', StringComparison.Ordinal) ? $"[{Target}]" : Target)}:{Number.ToString(CultureInfo.InvariantCulture)}",
        _ => "sim",
    };

    /// <summary>Parses the option text; throws <see cref="ArgumentException"/> saying what is accepted.</summary>
    public static GantrySpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var s = text.Trim();
        if (s == "sim") return new GantrySpec(GantryLinkKind.Simulated, "", 0);
        if (s.StartsWith("serial:", StringComparison.Ordinal))
        {
            var rest = s["serial:".Length..];
            var at = rest.LastIndexOf('@');
            var path = at < 0 ? rest : rest[..at];
            var baud = SerialGantryTransport.DefaultBaud;
            if (at >= 0 && !(int.TryParse(rest[(at + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out baud) && baud > 0))
            {
                throw Bad(text, $"baud '{rest[(at + 1)..]}' is not a positive whole number");
            }
            if (path.Length == 0) throw Bad(text, "the device path is missing");
            return new GantrySpec(GantryLinkKind.Serial, path, baud);
        }
        if (s.StartsWith("tcp:", StringComparison.Ordinal))
        {
            var rest = s["tcp:".Length..];
            var colon = rest.LastIndexOf(':');
            if (colon <= 0) throw Bad(text, "expected tcp:HOST:PORT");
            var host = rest[..colon].Trim('[', ']'); // [::1]:PORT
            if (!(int.TryParse(rest[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is >= 1 and <= 65535))
            {
                throw Bad(text, $"port '{rest[(colon + 1)..]}' is not a number from 1 to 65535");
            }
            if (host.Length == 0) throw Bad(text, "the host is missing");
            return new GantrySpec(GantryLinkKind.Tcp, host, port);
        }
        throw Bad(text, "expected sim, serial:PATH[@BAUD] (e.g. serial:/dev/ttyUSB0@115200) or tcp:HOST:PORT");
    }

    /// <summary>A new transport for this link (each connect gets a fresh one). Not for <see cref="GantryLinkKind.Simulated"/>.</summary>
    public IGantryTransport CreateTransport() => Kind switch
    {
        GantryLinkKind.Serial => new SerialGantryTransport(Target, Number),
        GantryLinkKind.Tcp => new TcpGantryTransport(Target, Number),
        _ => throw new InvalidOperationException("the in-process simulator has no stand-alone transport: use InProcessGantryTransport"),
    };

    private static ArgumentException Bad(string text, string why) => new($"invalid --gantry '{text}': {why}");
}
