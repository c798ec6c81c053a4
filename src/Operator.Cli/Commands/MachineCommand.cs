using System.CommandLine;
using Grpc.Core;
using System.Globalization;
using System.Text;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary><c>smp machine status|connect|home|jog|settings</c>.</summary>
internal static class MachineCommand
{
    public static Command Build(CliCommands app)
    {
        var machine = new Command("machine", "The gantry: status, homing, jogging");

        var status = new Command("status", "Current machine status (one fresh firmware report)");
        app.Bind(status, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            return Print(ctx, await conn.Machine.GetStatusAsync(new GetMachineStatusRequest(), deadline: conn.Deadline(), cancellationToken: ct));
        });

        var connect = new Command("connect", "Connect (or reconnect) to the gantry after the link dropped or the board was power-cycled: opens the port "
            + "(which resets most boards), waits for grbl's banner and reads its settings. The machine must be homed again. Refused while a session runs.");
        app.Bind(connect, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            ctx.Info("connecting to the gantry…");
            return Print(ctx, await conn.Machine.ConnectAsync(new ConnectRequest(), deadline: conn.Deadline(TimeSpan.FromSeconds(30)), cancellationToken: ct));
        });

        var home = new Command("home", "Run the homing cycle (the gantry moves to its home switches). Refused while a session runs or the e-stop is latched.");
        app.Bind(home, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            ctx.Info("homing…");
            return Print(ctx, await MotionCall.RunAsync(ctx, conn, "homing",
                token => conn.Machine.HomeAsync(new HomeRequest(), deadline: conn.Deadline(ControllerConnection.HomeTimeout), cancellationToken: token).ResponseAsync, ct));
        });

        var dx = new Option<double>("--dx") { Description = "Relative X move, mm", HelpName = "MM" };
        var dy = new Option<double>("--dy") { Description = "Relative Y move, mm", HelpName = "MM" };
        var dz = new Option<double>("--dz") { Description = "Relative Z move, mm (needle axis)", HelpName = "MM" };
        var feed = new Option<double>("--feed") { Description = "Feed, mm/min (default: the profile's travel feed)", HelpName = "MM_PER_MIN" };
        var jog = new Command("jog", "Relative jog at a hover-safe feed. Refused while a session runs or the e-stop is latched.") { dx, dy, dz, feed };
        jog.Validators.Add(result =>
        {
            // An unparsable number is already a parse error of its option.
            if (new[] { dx, dy, dz, feed }.Any(o => result.GetResult(o)?.Errors.Any() == true || result.GetResult(o)?.Tokens.Any(t => !double.TryParse(t.Value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out _)) == true)) return;
            double x = result.GetValue(dx), y = result.GetValue(dy), z = result.GetValue(dz), f = result.GetValue(feed);
            if (!double.IsFinite(x) || !double.IsFinite(y) || !double.IsFinite(z) || !double.IsFinite(f)) result.AddError("jog values must be finite numbers");
            else if (x == 0 && y == 0 && z == 0) result.AddError("give at least one of --dx, --dy, --dz (non-zero)");
            else if (f < 0) result.AddError("--feed must not be negative");
        });
        app.Bind(jog, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var request = new JogRequest { DxMm = parse.GetValue(dx), DyMm = parse.GetValue(dy), DzMm = parse.GetValue(dz), FeedMmPerMin = parse.GetValue(feed) };
            return Print(ctx, await MotionCall.RunAsync(ctx, conn, "the jog",
                token => conn.Machine.JogAsync(request, deadline: conn.Deadline(TimeSpan.FromSeconds(60)), cancellationToken: token).ResponseAsync, ct));
        });

        var profile = new Option<string?>("--profile") { Description = "A profile file (hardware/profiles/*.json) instead of the controller's active profile", HelpName = "FILE" };
        var settings = new Command("settings", "The firmware settings ($N=value) the profile needs, ready to paste into a terminal to the board "
            + "(every other line is a ';' comment), and how the connected board differs from them. A board that differs refuses sessions.")
        {
            profile,
        };
        app.Bind(settings, async (ctx, parse, ct) =>
        {
            var path = parse.GetValue(profile);
            FirmwareSettingsResponse response;
            var profileJson = path is null ? "" : ReadProfile(path);
            // A profile file is checked here first (SmpRobot.Machine, the controller's own code): its lines need no controller.
            var offline = path is null ? null : OfflineSettings(profileJson, path);
            using var conn = ctx.Connect();
            try
            {
                // The controller, when it answers, also compares the profile with the connected board.
                response = await conn.Machine.FirmwareSettingsAsync(new FirmwareSettingsRequest { ProfileJson = profileJson }, deadline: conn.Deadline(), cancellationToken: ct);
            }
            catch (RpcException e) when (CommandContext.IsConnectFailure(e) && offline is not null)
            {
                response = offline;
            }
            catch (RpcException e) when (CommandContext.IsConnectFailure(e))
            {
                throw new CliException(ExitCodes.Failure, CommandContext.DescribeRpcError(e, conn.Address) + "; to print a profile file's settings without a controller, give --profile FILE");
            }
            var json = JsonOutput.Message(response);
            json["lines"] = new System.Text.Json.Nodes.JsonArray([.. response.Expected.Where(e => !e.Informative).Select(e => (System.Text.Json.Nodes.JsonNode?)SettingLine(e))]);
            json["exitCode"] = ExitCodes.Success;
            ctx.Result(DescribeSettings(response), json);
            return ExitCodes.Success;
        });

        machine.Subcommands.Add(status);
        machine.Subcommands.Add(connect);
        machine.Subcommands.Add(home);
        machine.Subcommands.Add(jog);
        machine.Subcommands.Add(settings);
        return machine;
    }

    /// <summary>Prints the status; exit 1 when the gantry is not connected (nothing on it can be trusted or moved).</summary>
    private static int Print(CommandContext ctx, MachineStatus s)
    {
        var exitCode = s.Connected ? ExitCodes.Success : ExitCodes.Failure;
        var json = JsonOutput.Message(s);
        json["exitCode"] = exitCode;
        ctx.Result(Describe(s), json);
        if (!s.Connected) ctx.Info("the gantry is not connected: check the cable and power, then smp machine connect");
        return exitCode;
    }

    /// <summary>Human text of a machine status.</summary>
    public static string Describe(MachineStatus s)
    {
        var p = s.Position ?? new Position();
        var sb = new StringBuilder();
        sb.Append("Gantry    ").Append(string.IsNullOrEmpty(s.Gantry) ? "?" : s.Gantry).Append(" (profile ").Append(s.ProfileName).Append("), ")
            .AppendLine(s.Connected ? "connected" : "NOT CONNECTED");
        sb.Append("State     ").Append(string.IsNullOrEmpty(s.State) ? "?" : s.State).AppendLine(s.Homed ? ", homed" : ", NOT homed");
        sb.Append("Position  x ").Append(Formatting.Mm(p.XMm)).Append("  y ").Append(Formatting.Mm(p.YMm)).Append("  z ").Append(Formatting.Mm(p.ZMm)).AppendLine(" mm");
        sb.Append("Needle    ").AppendLine(s.NeedleOn ? "ON" : "off");
        sb.Append("E-stop    ").AppendLine(s.EstopLatched ? "LATCHED" : "clear");
        sb.Append("Pedal     ").AppendLine(!s.PedalConfigured ? "none" : s.PedalPressed ? "held" : "released (the machine works only while it is held)");
        sb.Append("Patient   ").AppendLine(!s.PatientSwitchConfigured ? "no hand switch" : s.PatientSwitchPressed ? "hand switch PRESSED (sessions pause)" : "hand switch ready");
        sb.Append("Alarm     ").AppendLine(!string.IsNullOrEmpty(s.LastAlarm) ? s.LastAlarm
            : s.State == "Alarm" ? "locked until homed (grbl's alarm state after power-on or a reset): smp machine home"
            : "-");
        sb.Append("Link      ").AppendLine(s.GarbledStatusReports == 0
            ? "no damaged status reports"
            : $"{s.GarbledStatusReports.ToString(CultureInfo.InvariantCulture)} damaged status report{(s.GarbledStatusReports == 1 ? "" : "s")} dropped (last '{s.LastGarbledStatus}'): check the USB cable and adapter");
        sb.Append("Settings  ");
        if (!string.IsNullOrEmpty(s.SettingsProblem))
        {
            sb.Append(s.SettingsChecked ? "DIFFER from the profile (sessions refused): " : "NOT CHECKED (sessions refused): ").Append(s.SettingsProblem);
        }
        else if (s.SettingsChecked)
        {
            sb.Append("match the profile");
        }
        else
        {
            sb.Append(s.Connected ? "not checked yet" : "-");
        }
        foreach (var d in s.SettingsDifferences.Where(d => d.Informative))
        {
            sb.AppendLine().Append("          note: ").Append(Difference(d));
        }
        if (s.TimeScale > 0 && s.TimeScale != 1) sb.AppendLine().Append("Sim speed ").Append(Formatting.Number(s.TimeScale, "0.##")).Append('x');
        return sb.ToString();
    }

    /// <summary>Largest profile file read (profiles are a few KiB).</summary>
    public const long MaxProfileBytes = 256 * 1024;

    /// <summary>
    /// Text of <c>smp machine settings</c>: the required <c>$N=value</c> lines, every other line a grbl
    /// comment (<c>; …</c>), so the whole output can be pasted into a terminal to the board.
    /// </summary>
    public static string DescribeSettings(FirmwareSettingsResponse r)
    {
        var sb = new StringBuilder();
        sb.Append("; firmware settings for profile ").Append(r.ProfileName).AppendLine(": send these lines to the board, then reconnect");
        foreach (var e in r.Expected.Where(e => !e.Informative)) sb.AppendLine(SettingLine(e));
        var informative = r.Expected.Where(e => e.Informative).ToList();
        if (informative.Count > 0)
        {
            sb.Append("; set to match the drivers and wiring (not checked): ")
                .AppendLine(string.Join(", ", informative.Select(e => "$" + e.Number.ToString(System.Globalization.CultureInfo.InvariantCulture) + " " + e.Name + " (grbl default " + e.Value + ")")));
        }
        if (!r.Checked)
        {
            sb.Append("; board not checked: ").Append(string.IsNullOrEmpty(r.CheckError) ? "unknown reason" : r.CheckError);
            return sb.ToString();
        }
        var required = r.Differences.Where(d => !d.Informative).ToList();
        sb.Append("; board ").Append(required.Count == 0 ? "matches" : "DIFFERS from").Append(" profile ").Append(r.ProfileName);
        if (required.Count > 0) sb.Append(" (sessions are refused until it matches)");
        foreach (var d in r.Differences) sb.AppendLine().Append(";   ").Append(Difference(d));
        return sb.ToString();
    }

    private static string SettingLine(FirmwareSetting e) => "$" + e.Number.ToString(System.Globalization.CultureInfo.InvariantCulture) + "=" + e.Value;

    private static string Difference(SettingDifference d) =>
        "$" + d.Number.ToString(System.Globalization.CultureInfo.InvariantCulture) + " (" + d.Name + "): profile " + d.Expected + ", board " + d.Actual + (d.Informative ? " (informative)" : "");

    /// <summary>The settings of a profile file, computed here (no board is compared: none is connected to this computer).</summary>
    private static FirmwareSettingsResponse OfflineSettings(string profileJson, string path)
    {
        SmpRobot.Machine.MachineProfile machineProfile;
        try
        {
            machineProfile = SmpRobot.Machine.FirmwareSettings.ParseProfile(profileJson, $"'{path}'");
        }
        catch (InvalidDataException e)
        {
            throw new CliException(ExitCodes.Usage, e.Message);
        }
        var response = new FirmwareSettingsResponse { ProfileName = machineProfile.Name, Connected = false, CheckError = "checked offline against the profile file: no board compared" };
        response.Expected.Add(SmpRobot.Machine.FirmwareSettings.Expected(machineProfile).Select(e => new Contracts.V1.FirmwareSetting { Number = e.Number, Name = e.Name, Value = e.Value, Informative = e.Informative }));
        return response;
    }

    private static string ReadProfile(string path)
    {
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new CliException(ExitCodes.Usage, $"profile file not found: {path}");
            if (info.Length > MaxProfileBytes) throw new CliException(ExitCodes.Usage, $"profile file {path} is larger than {MaxProfileBytes / 1024} KiB");
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new CliException(ExitCodes.Usage, $"cannot read profile file {path}: {e.Message}");
        }
    }
}
