using System.Globalization;
using SmpRobot.Geometry;

namespace SmpRobot.Controller.Gantry;

/// <summary>
/// Stateless pieces of the grbl 1.1 serial protocol: status-report parsing, welcome-banner
/// detection, error and alarm code tables, real-time byte classification. Also understands the
/// grblHAL extensions that matter here (banner, extra alarms, extra status fields).
/// </summary>
public static class GrblProtocol
{
    /// <summary>
    /// Parses a real-time status report such as <c>&lt;Idle|MPos:1.000,2.000,3.000|Bf:15,128|FS:0,0&gt;</c>.
    /// Known fields: MPos, WPos, WCO, Bf, FS, F, Ov, Pn; any other field is ignored. A report with
    /// WPos must also carry WCO (machine position = WPos + WCO), because a work position alone does
    /// not tell where the machine is. Returns null for anything malformed (missing chevrons, bad
    /// state, fewer than three axes, unparsable numbers, no position at all).
    /// </summary>
    /// <param name="line">One line as received, without line terminator.</param>
    /// <param name="receivedTimestamp">TimeProvider timestamp stored in the result.</param>
    public static GrblStatus? ParseStatus(string line, long receivedTimestamp)
    {
        ArgumentNullException.ThrowIfNull(line);
        return TryParseStatus(line.AsSpan(), receivedTimestamp, null, out var status, out _) ? status : null;
    }

    /// <summary>
    /// Core of <see cref="ParseStatus"/>. <paramref name="knownWorkOffset"/> (the last WCO seen) lets a
    /// WPos report without WCO be converted; <paramref name="reportedWorkOffset"/> returns the WCO of
    /// this report, if it had one.
    /// </summary>
    internal static bool TryParseStatus(ReadOnlySpan<char> line, long receivedTimestamp, Vec3? knownWorkOffset, out GrblStatus? status, out Vec3? reportedWorkOffset)
    {
        status = null;
        reportedWorkOffset = null;
        if (line.Length < 3 || line[0] != '<' || line[^1] != '>')
        {
            return false;
        }

        var body = line[1..^1];
        int pipe = body.IndexOf('|');
        var stateSpan = pipe < 0 ? body : body[..pipe];
        var state = InternState(stateSpan);
        if (state is null)
        {
            return false;
        }

        Vec3? machinePosition = null;
        Vec3? workPosition = null;
        int blocksFree = -1;
        int rxBytesFree = -1;
        double feed = 0;
        double speed = 0;

        var rest = pipe < 0 ? ReadOnlySpan<char>.Empty : body[(pipe + 1)..];
        while (!rest.IsEmpty)
        {
            int next = rest.IndexOf('|');
            var field = next < 0 ? rest : rest[..next];
            rest = next < 0 ? ReadOnlySpan<char>.Empty : rest[(next + 1)..];

            int colon = field.IndexOf(':');
            if (colon <= 0)
            {
                return false;
            }

            var name = field[..colon];
            var value = field[(colon + 1)..];
            switch (name)
            {
                case "MPos":
                    if (!TryParseAxes(value, out var m))
                    {
                        return false;
                    }

                    machinePosition = m;
                    break;
                case "WPos":
                    if (!TryParseAxes(value, out var w))
                    {
                        return false;
                    }

                    workPosition = w;
                    break;
                case "WCO":
                    if (!TryParseAxes(value, out var o))
                    {
                        return false;
                    }

                    reportedWorkOffset = o;
                    break;
                case "Bf":
                    if (!TryParseTwoInts(value, out blocksFree, out rxBytesFree))
                    {
                        return false;
                    }

                    break;
                case "FS":
                    // grbl: feed,speed; grblHAL may append a third value (programmed speed).
                    if (!TryParseNumbers(value, 2, 3, out feed, out speed))
                    {
                        return false;
                    }

                    break;
                case "F":
                    if (!TryParseNumbers(value, 1, 1, out feed, out _))
                    {
                        return false;
                    }

                    break;
                default:
                    // Ov, Pn, Ln, A and firmware extensions carry nothing the client needs.
                    break;
            }
        }

        if (machinePosition is null && workPosition is Vec3 wpos)
        {
            var offset = reportedWorkOffset ?? knownWorkOffset;
            if (offset is Vec3 wco)
            {
                machinePosition = wpos + wco;
            }
        }

        if (machinePosition is not Vec3 mpos)
        {
            return false;
        }

        status = new GrblStatus(state, mpos, blocksFree, rxBytesFree, feed, speed, receivedTimestamp);
        return true;
    }

    /// <summary>
    /// True for a welcome banner: grbl <c>Grbl 1.1h ['$' for help]</c>, grblHAL
    /// <c>GrblHAL 1.1f ['$' or '$HELP' for help]</c> and forks that keep that shape
    /// ("Grbl", optional "HAL", space, a version starting with a digit, a bracketed help hint).
    /// </summary>
    /// <summary>
    /// Parses a probe report, <c>[PRB:x,y,z:s]</c> (grbl 1.1 prints it after every probe cycle; grblHAL may add
    /// axes, of which the first three are taken). False for any other line or a malformed report.
    /// </summary>
    public static bool TryParseProbe(string line, long timestamp, out ProbeReport? report)
    {
        report = null;
        if (line is null || !line.StartsWith("[PRB:", StringComparison.Ordinal) || !line.EndsWith(']')) return false;
        var body = line.AsSpan(5, line.Length - 6);
        var colon = body.LastIndexOf(':');
        if (colon < 0 || body[(colon + 1)..] is not ("0" or "1")) return false;
        var axes = body[..colon].ToString().Split(',');
        if (axes.Length < 3) return false;
        var v = new double[3];
        for (var i = 0; i < 3; i++)
        {
            if (!double.TryParse(axes[i], NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out v[i]) || !double.IsFinite(v[i])) return false;
        }
        report = new ProbeReport(new Vec3(v[0], v[1], v[2]), body[colon + 1] == '1', timestamp);
        return true;
    }

    public static bool IsBanner(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var span = line.AsSpan().TrimEnd();
        if (!span.StartsWith("Grbl", StringComparison.Ordinal))
        {
            return false;
        }

        var rest = span[4..];
        if (rest.StartsWith("HAL", StringComparison.Ordinal))
        {
            rest = rest[3..];
        }

        return rest.Length >= 2
            && rest[0] == ' '
            && char.IsAsciiDigit(rest[1])
            && rest.IndexOf('[') > 0
            && rest.EndsWith("help]", StringComparison.Ordinal);
    }

    /// <summary>Meaning of <c>error:N</c> (grbl 1.1 codes 1..38, grblHAL 18/19); "unknown error N" otherwise.</summary>
    public static string ErrorText(int code) => code switch
    {
        1 => "a word in the block has no command letter",
        2 => "a number is missing or not a valid number",
        3 => "unknown or unsupported '$' system command",
        4 => "a value that must be positive is negative",
        5 => "homing requested but homing is disabled in the settings",
        6 => "step pulse time must be at least 3 microseconds",
        7 => "EEPROM read failed; the affected settings were reset to defaults",
        8 => "this '$' command is only accepted while the machine is idle",
        9 => "G-code is locked out while in alarm or jog state",
        10 => "soft limits need homing to be enabled",
        11 => "line too long; it was not executed",
        12 => "setting would make the step rate exceed what the firmware supports",
        13 => "safety door is open",
        14 => "startup or build-info line too long to store",
        15 => "jog target lies outside the machine travel; jog ignored",
        16 => "jog command is malformed or contains a forbidden G-code",
        17 => "laser mode needs PWM spindle output",
        18 => "reset requested (grblHAL)",
        19 => "a value that must be above zero is zero or negative (grblHAL)",
        20 => "unsupported or invalid G-code command",
        21 => "two commands from the same modal group in one block",
        22 => "feed rate not set",
        23 => "command needs an integer value",
        24 => "two commands in one block both need the axis words",
        25 => "the same word appears twice in the block",
        26 => "command needs axis words but the block has none",
        27 => "invalid line number",
        28 => "command is missing a required value word",
        29 => "G59.x work coordinate systems are not supported",
        30 => "G53 is only allowed with G0 or G1",
        31 => "axis words given but nothing in the block uses them",
        32 => "arc needs at least one axis word in the selected plane",
        33 => "motion target is invalid",
        34 => "arc radius is invalid",
        35 => "arc needs at least one offset word in the selected plane",
        36 => "value words in the block are not used by any command",
        37 => "dynamic tool length offset is not on the tool length axis",
        38 => "tool number above the supported maximum",
        _ => "unknown error " + code.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>Meaning of <c>ALARM:N</c> (grbl 1..9, grblHAL 10..21); "unknown alarm N" otherwise.</summary>
    public static string AlarmText(int code) => code switch
    {
        1 => "hard limit switch hit; sudden stop, position probably lost, re-home",
        2 => "soft limit: target outside machine travel; stopped in time, position kept",
        3 => "reset while moving; sudden stop, position probably lost, re-home",
        4 => "probe fail: probe not in the expected state before the probing cycle",
        5 => "probe fail: probe did not trigger within the programmed travel",
        6 => "homing fail: the homing cycle was reset",
        7 => "homing fail: safety door opened during homing",
        8 => "homing fail: pull-off did not clear the limit switch",
        9 => "homing fail: limit switch not found within the search distance",
        10 => "emergency stop input active (grblHAL)",
        11 => "homing required before motion (grblHAL)",
        12 => "limit switch engaged (grblHAL)",
        13 => "probe triggered while protecting (grblHAL)",
        14 => "spindle did not reach speed in time (grblHAL)",
        15 => "homing fail: auto-squaring could not find the second switch (grblHAL)",
        16 => "power-on self test failed (grblHAL)",
        17 => "motor driver fault (grblHAL)",
        18 => "homing fail (grblHAL)",
        19 => "Modbus exception (grblHAL)",
        20 => "I/O expander exception (grblHAL)",
        21 => "non-volatile storage failed (grblHAL)",
        _ => "unknown alarm " + code.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>
    /// True when the alarm means the machine position can no longer be trusted (re-home before
    /// any motion): hard limit, reset while moving, homing failures, grblHAL e-stop / homing
    /// required and every alarm not known to keep position. False only for soft limit (2) and
    /// the probe failures (4, 5), which stop in a controlled way or before moving.
    /// </summary>
    public static bool AlarmLosesPosition(int code) => code switch
    {
        2 or 4 or 5 => false,
        // Unknown codes count as lost: trusting a position we cannot vouch for is the unsafe side.
        _ => true,
    };

    /// <summary>True for bytes grbl acts on immediately instead of buffering: <c>? ! ~</c>, 0x18 and every byte &gt;= 0x80.</summary>
    public static bool IsRealtimeByte(byte b) => b is (byte)'?' or (byte)'!' or (byte)'~' or 0x18 or >= 0x80;

    // Maps the state word to a constant string so the 5–10 Hz status path does not allocate it.
    private static string? InternState(ReadOnlySpan<char> state)
    {
        if (state.IsEmpty)
        {
            return null;
        }

        int colon = state.IndexOf(':');
        var word = colon < 0 ? state : state[..colon];
        if (word.IsEmpty)
        {
            return null;
        }

        foreach (var c in word)
        {
            if (!char.IsAsciiLetter(c))
            {
                return null;
            }
        }

        if (colon >= 0)
        {
            var sub = state[(colon + 1)..];
            if (sub.IsEmpty)
            {
                return null;
            }

            foreach (var c in sub)
            {
                if (!char.IsAsciiDigit(c))
                {
                    return null;
                }
            }
        }

        return state switch
        {
            "Idle" => "Idle",
            "Run" => "Run",
            "Jog" => "Jog",
            "Alarm" => "Alarm",
            "Check" => "Check",
            "Home" => "Home",
            "Sleep" => "Sleep",
            "Hold:0" => "Hold:0",
            "Hold:1" => "Hold:1",
            "Door:0" => "Door:0",
            "Door:1" => "Door:1",
            "Door:2" => "Door:2",
            "Door:3" => "Door:3",
            _ => state.ToString(),
        };
    }

    // grbl reports three axes; grblHAL may report more. Takes the first three, requires at least three.
    private static bool TryParseAxes(ReadOnlySpan<char> value, out Vec3 axes)
    {
        axes = default;
        Span<double> v = stackalloc double[3];
        int count = 0;
        while (true)
        {
            int comma = value.IndexOf(',');
            var part = comma < 0 ? value : value[..comma];
            if (!TryParseNumber(part, out var number))
            {
                return false;
            }

            if (count < 3)
            {
                v[count] = number;
            }

            count++;
            if (comma < 0)
            {
                break;
            }

            value = value[(comma + 1)..];
        }

        if (count < 3)
        {
            return false;
        }

        axes = new Vec3(v[0], v[1], v[2]);
        return true;
    }

    private static bool TryParseTwoInts(ReadOnlySpan<char> value, out int first, out int second)
    {
        first = -1;
        second = -1;
        int comma = value.IndexOf(',');
        if (comma < 0)
        {
            return false;
        }

        if (!int.TryParse(value[..comma], NumberStyles.None, CultureInfo.InvariantCulture, out var a)
            || !int.TryParse(value[(comma + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var b))
        {
            return false;
        }

        first = a;
        second = b;
        return true;
    }

    // Parses minCount..maxCount comma-separated numbers; returns the first two (0 when absent).
    private static bool TryParseNumbers(ReadOnlySpan<char> value, int minCount, int maxCount, out double first, out double second)
    {
        first = 0;
        second = 0;
        int count = 0;
        while (true)
        {
            int comma = value.IndexOf(',');
            var part = comma < 0 ? value : value[..comma];
            if (!TryParseNumber(part, out var number))
            {
                return false;
            }

            if (count == 0)
            {
                first = number;
            }
            else if (count == 1)
            {
                second = number;
            }

            count++;
            if (count > maxCount)
            {
                return false;
            }

            if (comma < 0)
            {
                break;
            }

            value = value[(comma + 1)..];
        }

        return count >= minCount;
    }

    private static bool TryParseNumber(ReadOnlySpan<char> text, out double value)
    {
        // grbl prints plain decimals: optional sign, digits, optional fraction. No exponents, no spaces.
        return double.TryParse(text, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out value)
            && double.IsFinite(value);
    }
}
