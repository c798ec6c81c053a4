using System.CommandLine;
using System.Text;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary><c>smp machine status|home|jog</c>.</summary>
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

        var home = new Command("home", "Run the homing cycle (the gantry moves to its home switches). Refused while a session runs or the e-stop is latched.");
        app.Bind(home, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            ctx.Info("homing…");
            return Print(ctx, await conn.Machine.HomeAsync(new HomeRequest(), deadline: conn.Deadline(ControllerConnection.HomeTimeout), cancellationToken: ct));
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
            return Print(ctx, await conn.Machine.JogAsync(request, deadline: conn.Deadline(TimeSpan.FromSeconds(60)), cancellationToken: ct));
        });

        machine.Subcommands.Add(status);
        machine.Subcommands.Add(home);
        machine.Subcommands.Add(jog);
        return machine;
    }

    private static int Print(CommandContext ctx, MachineStatus s)
    {
        var json = JsonOutput.Message(s);
        json["exitCode"] = ExitCodes.Success;
        ctx.Result(Describe(s), json);
        return ExitCodes.Success;
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
        sb.Append("Alarm     ").Append(string.IsNullOrEmpty(s.LastAlarm) ? "-" : s.LastAlarm);
        if (s.TimeScale > 0 && s.TimeScale != 1) sb.AppendLine().Append("Sim speed ").Append(Formatting.Number(s.TimeScale, "0.##")).Append('x');
        return sb.ToString();
    }
}
