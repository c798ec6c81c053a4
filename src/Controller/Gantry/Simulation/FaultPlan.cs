using System.Globalization;

namespace SmpRobot.Controller.Gantry.Simulation;

/// <summary>
/// Faults the <see cref="SimulatedGantry"/> injects, parsed from a spec such as
/// <c>"drop-at-line=42,delay-ok=5,seed=7"</c> (see <see cref="Parse"/>). Every injected fault is
/// recorded in <see cref="SimulatedGantry.FaultLog"/>. An empty plan injects nothing.
/// </summary>
/// <remarks>
/// Vocabulary. <b>Line N</b>: the Nth line the host sent since power-on (its Nth newline), counting every
/// line, <c>$H</c> included, whatever happened to it afterwards. <b>Dot N / plunge N</b>: the Nth plunge
/// the firmware parsed, a plunge being a relative (G91) move with only a negative Z that comes right
/// after a <c>G4</c> line, which is how <c>DotProgram</c> places a dot (travel, <c>G4 P0</c>, plunge); the
/// descents of a travel follow a horizontal move and are not plunges. Randomness (<c>drop</c>,
/// <c>flip</c>) draws from generators seeded with <see cref="Seed"/>, once per line byte the host
/// sends, so the same host traffic meets the same faults. Real-time bytes the host sends
/// (<c>? ! ~ 0x18 0x84 0x85</c>) are never dropped or flipped: how many status queries a run sends
/// depends on wall-clock timing, and drawing for them would make runs irreproducible (a lost status
/// query is what <c>stall</c> models).
/// </remarks>
public sealed record FaultPlan
{
    /// <summary>The faults <see cref="Parse"/> knows, as they are written in a spec.</summary>
    public static readonly IReadOnlyList<string> KnownFaults =
    [
        "drop=P", "drop-at-line=N", "flip=P", "flip-at-line=N", "delay-ok=MS", "lose-ok-at-line=N",
        "alarm-at-dot=N", "reset-at-dot=N", "rx=N", "stall-at-dot=N[:MS]", "disconnect-at-dot=N", "garble-status=P", "garble-status-at-dot=N[:COUNT]", "homing-fail=CODE", "probe-stuck=N", "probe-cut=N", "seed=N",
    ];

    /// <summary>Seed of the random faults (<c>seed=N</c>). Default 1.</summary>
    public int Seed { get; init; } = 1;

    /// <summary><c>drop=P</c>: each line byte from the host is lost with this probability (a CH340 adapter losing bytes). 0: off.</summary>
    public double DropProbability { get; init; }

    /// <summary>
    /// <c>drop-at-line=N</c>: line N loses one digit: the first digit of its first X, Y or Z value (a silently
    /// changed coordinate is the worst case), else its first digit, else its first byte.
    /// </summary>
    public int? DropAtLine { get; init; }

    /// <summary><c>flip=P</c>: each line byte from the host has one random bit flipped with this probability. 0: off.</summary>
    public double FlipProbability { get; init; }

    /// <summary>
    /// <c>flip-at-line=N</c>: line N has the lowest bit of one byte flipped: the byte <see cref="DropAtLine"/>
    /// would drop. A digit stays a digit (2 becomes 3), so the firmware accepts the changed number.
    /// </summary>
    public int? FlipAtLine { get; init; }

    /// <summary><c>delay-ok=MS</c>: every ok (and, to keep acks in order, any error behind it) leaves the firmware this many wall (TimeProvider) milliseconds late. 0: off.</summary>
    public double DelayOkMs { get; init; }

    /// <summary><c>lose-ok-at-line=N</c>: the ok of line N is never sent (an error reply is still sent).</summary>
    public int? LoseOkAtLine { get; init; }

    /// <summary><c>alarm-at-dot=N</c>: when plunge N starts, a hard limit trips: motion killed, needle drive off, <c>ALARM:1</c>, position lost, everything refused until a soft reset.</summary>
    public int? AlarmAtDot { get; init; }

    /// <summary><c>reset-at-dot=N</c>: halfway through plunge N the board restarts by itself (a brown-out): motion killed, buffers flushed, needle drive off, a banner without ALARM line, homing lost.</summary>
    public int? ResetAtDot { get; init; }

    /// <summary><c>rx=N</c>: the firmware's receive buffer holds N bytes instead of the profile's; bytes beyond it are dropped silently.</summary>
    public int? RxBufferBytes { get; init; }

    /// <summary>
    /// <c>stall-at-dot=N[:MS]</c>: when plunge N completes, the firmware's main loop hangs: no line is
    /// taken, nothing is answered (no ok, no status report) and real-time commands are not acted on,
    /// while the planner finishes what it holds. See <see cref="StallMs"/>.
    /// </summary>
    public int? StallAtDot { get; init; }

    /// <summary>How long the stall lasts, wall (TimeProvider) milliseconds; null: forever. Afterwards the held output and one status report (if asked for) are sent.</summary>
    public double? StallMs { get; init; }

    /// <summary><c>disconnect-at-dot=N</c>: when plunge N completes, the cable is pulled (<see cref="SimulatedGantry.Disconnect"/>); the board goes on with what it has.</summary>
    public int? DisconnectAtDot { get; init; }

    /// <summary>
    /// <c>garble-status=P</c> (board → host): each status report the firmware sends has, with this probability,
    /// one byte between its <c>&lt;</c> and <c>&gt;</c> damaged on the way: a random bit flipped, or (one time in
    /// three) the byte lost; never turned into a line end. Drawn once per report from its own seeded
    /// generator; how many reports a run asks for depends on wall-clock timing, so which ones are hit may
    /// differ between runs. 0: off.
    /// </summary>
    public double GarbleStatusProbability { get; init; }

    /// <summary>
    /// <c>garble-status-at-dot=N[:COUNT]</c> (board → host): once plunge N starts, the next COUNT status reports
    /// arrive with their first digit turned into a letter (bit 6 flipped), so they cannot be read. COUNT defaults to 1.
    /// </summary>
    public int? GarbleStatusAtDot { get; init; }

    /// <summary>How many reports in a row <see cref="GarbleStatusAtDot"/> damages. Default 1.</summary>
    public int GarbleStatusCount { get; init; } = 1;

    /// <summary>
    /// <c>homing-fail=CODE</c>: the first homing cycle fails with ALARM:CODE (8 pull-off did not clear the
    /// switch, 9 switch not found): the X/Y switches never trip, and grbl answers the alarm, the $H's ok, then
    /// resets itself (banner, homing lock). Later cycles succeed.
    /// </summary>
    public int? HomingFailAlarm { get; init; }

    /// <summary><c>probe-stuck=N</c>: from probe cycle N on, the probe input reads triggered before anything touches it (a shorted wire): grbl answers the cycle with ALARM:4 and does not move.</summary>
    public int? ProbeStuckFrom { get; init; }

    /// <summary><c>probe-cut=N</c>: from probe cycle N on, the probe input never triggers (a cut wire): a G38.2 runs its whole distance and ends in ALARM:5.</summary>
    public int? ProbeCutFrom { get; init; }

    /// <summary>True when the plan injects nothing.</summary>
    public bool IsEmpty => this == new FaultPlan { Seed = Seed };

    /// <summary>
    /// Parses a comma-separated list of <c>name[=value]</c> (whitespace around items is ignored; an empty
    /// spec is an empty plan). Probabilities are in [0, 1], line and dot numbers are &gt;= 1, milliseconds are
    /// finite and &gt;= 0, <c>rx</c> is at least 2. Numbers use the invariant culture.
    /// </summary>
    /// <exception cref="ArgumentException">An unknown fault, a missing or bad value, or a fault given twice; the message lists the known faults.</exception>
    public static FaultPlan Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var plan = new FaultPlan();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var rawItem in spec.Split(','))
        {
            var item = rawItem.Trim();
            if (item.Length == 0)
            {
                if (spec.Trim().Length == 0) continue;
                throw Bad(spec, "an empty item");
            }
            var eq = item.IndexOf('=', StringComparison.Ordinal);
            var name = (eq < 0 ? item : item[..eq]).Trim().ToLowerInvariant();
            var value = eq < 0 ? null : item[(eq + 1)..].Trim();
            if (!seen.Add(name)) throw Bad(spec, $"'{name}' given twice");
            if (value is null or "") throw Bad(spec, KnownFaults.Any(f => f.StartsWith(name + "=", StringComparison.Ordinal)) ? $"'{name}' needs a value" : $"unknown fault '{name}'");
            plan = name switch
            {
                "seed" => plan with { Seed = Integer(spec, name, value, int.MinValue) },
                "drop" => plan with { DropProbability = Probability(spec, name, value) },
                "drop-at-line" => plan with { DropAtLine = Integer(spec, name, value, 1) },
                "flip" => plan with { FlipProbability = Probability(spec, name, value) },
                "flip-at-line" => plan with { FlipAtLine = Integer(spec, name, value, 1) },
                "delay-ok" => plan with { DelayOkMs = Milliseconds(spec, name, value) },
                "lose-ok-at-line" => plan with { LoseOkAtLine = Integer(spec, name, value, 1) },
                "alarm-at-dot" => plan with { AlarmAtDot = Integer(spec, name, value, 1) },
                "reset-at-dot" => plan with { ResetAtDot = Integer(spec, name, value, 1) },
                "rx" => plan with { RxBufferBytes = Integer(spec, name, value, 2) },
                "stall-at-dot" => ParseStall(plan, spec, value),
                "disconnect-at-dot" => plan with { DisconnectAtDot = Integer(spec, name, value, 1) },
                "garble-status" => plan with { GarbleStatusProbability = Probability(spec, name, value) },
                "garble-status-at-dot" => ParseGarbleAt(plan, spec, value),
                "probe-stuck" => plan with { ProbeStuckFrom = Integer(spec, name, value, 1) },
                "probe-cut" => plan with { ProbeCutFrom = Integer(spec, name, value, 1) },
                "homing-fail" => plan with { HomingFailAlarm = Integer(spec, name, value, 8) is var code && code <= 9 ? code : throw Bad(spec, $"'homing-fail' needs alarm 8 or 9, not '{value}'") },
                _ => throw Bad(spec, $"unknown fault '{name}'"),
            };
        }
        return plan;
    }

    /// <summary>The plan as a spec that <see cref="Parse"/> reads back to an equal plan ("" when empty with the default seed).</summary>
    public override string ToString()
    {
        var items = new List<string>();
        void Add(string name, object? value)
        {
            if (value is not null) items.Add(string.Create(CultureInfo.InvariantCulture, $"{name}={value}"));
        }
        Add("drop", DropProbability > 0 ? DropProbability.ToString("R", CultureInfo.InvariantCulture) : null);
        Add("drop-at-line", DropAtLine);
        Add("flip", FlipProbability > 0 ? FlipProbability.ToString("R", CultureInfo.InvariantCulture) : null);
        Add("flip-at-line", FlipAtLine);
        Add("delay-ok", DelayOkMs > 0 ? DelayOkMs.ToString("R", CultureInfo.InvariantCulture) : null);
        Add("lose-ok-at-line", LoseOkAtLine);
        Add("alarm-at-dot", AlarmAtDot);
        Add("reset-at-dot", ResetAtDot);
        Add("rx", RxBufferBytes);
        Add("stall-at-dot", StallAtDot is { } s ? s.ToString(CultureInfo.InvariantCulture) + (StallMs is { } ms ? ":" + ms.ToString("R", CultureInfo.InvariantCulture) : "") : null);
        Add("disconnect-at-dot", DisconnectAtDot);
        Add("garble-status", GarbleStatusProbability > 0 ? GarbleStatusProbability.ToString("R", CultureInfo.InvariantCulture) : null);
        Add("garble-status-at-dot", GarbleStatusAtDot is { } g ? g.ToString(CultureInfo.InvariantCulture) + (GarbleStatusCount != 1 ? ":" + GarbleStatusCount.ToString(CultureInfo.InvariantCulture) : "") : null);
        Add("homing-fail", HomingFailAlarm);
        Add("probe-stuck", ProbeStuckFrom);
        Add("probe-cut", ProbeCutFrom);
        if (Seed != 1) Add("seed", Seed);
        return string.Join(",", items);
    }

    private static FaultPlan ParseStall(FaultPlan plan, string spec, string value)
    {
        var colon = value.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0) return plan with { StallAtDot = Integer(spec, "stall-at-dot", value, 1), StallMs = null };
        return plan with
        {
            StallAtDot = Integer(spec, "stall-at-dot", value[..colon], 1),
            StallMs = Milliseconds(spec, "stall-at-dot", value[(colon + 1)..]),
        };
    }

    private static FaultPlan ParseGarbleAt(FaultPlan plan, string spec, string value)
    {
        var colon = value.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0) return plan with { GarbleStatusAtDot = Integer(spec, "garble-status-at-dot", value, 1), GarbleStatusCount = 1 };
        return plan with
        {
            GarbleStatusAtDot = Integer(spec, "garble-status-at-dot", value[..colon], 1),
            GarbleStatusCount = Integer(spec, "garble-status-at-dot", value[(colon + 1)..], 1),
        };
    }

    private static int Integer(string spec, string name, string value, int min)
    {
        if (!int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) || n < min)
        {
            throw Bad(spec, $"'{name}' needs a whole number{(min > int.MinValue ? " >= " + min.ToString(CultureInfo.InvariantCulture) : "")}, not '{value}'");
        }
        return n;
    }

    private static double Probability(string spec, string name, string value)
    {
        if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var p) || !(p >= 0 && p <= 1))
        {
            throw Bad(spec, $"'{name}' needs a probability between 0 and 1, not '{value}'");
        }
        return p;
    }

    private static double Milliseconds(string spec, string name, string value)
    {
        if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var ms) || !double.IsFinite(ms) || ms < 0)
        {
            throw Bad(spec, $"'{name}' needs milliseconds >= 0, not '{value}'");
        }
        return ms;
    }

    private static ArgumentException Bad(string spec, string what) =>
        new($"bad fault spec '{spec}': {what}. Known faults (comma-separated name=value): {string.Join(", ", KnownFaults)}", nameof(spec));
}

/// <summary>One fault the simulator injected.</summary>
/// <param name="Fault">The fault's spec name, e.g. "drop-at-line", "alarm-at-dot", "rx".</param>
/// <param name="SimSeconds">When, simulated seconds since power-on.</param>
/// <param name="Line">The host line it struck (see <see cref="FaultPlan"/>), when it struck one.</param>
/// <param name="Dot">The plunge number it struck, for the *-at-dot faults.</param>
/// <param name="Detail">What exactly happened, e.g. the line before and after.</param>
public sealed record FaultEvent(string Fault, double SimSeconds, int? Line, int? Dot, string Detail);
