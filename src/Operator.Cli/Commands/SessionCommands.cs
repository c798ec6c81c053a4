using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using SmpRobot.Contracts.V1;
using Spectre.Console;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary><c>smp sessions</c> and <c>smp session show|pause|resume|abort|resolve</c>.</summary>
internal static class SessionCommands
{
    public static Command BuildList(CliCommands app)
    {
        var command = new Command("sessions", "List sessions");
        app.Bind(command, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var reply = await conn.Sessions.ListAsync(new ListSessionsRequest(), deadline: conn.Deadline(), cancellationToken: ct);
            if (ctx.Json)
            {
                var list = new JsonArray();
                foreach (var s in reply.Sessions) list.Add(JsonOutput.Session(s, ExitCodes.Success));
                ctx.WriteJson(new JsonObject { ["sessions"] = list, ["exitCode"] = ExitCodes.Success });
                return ExitCodes.Success;
            }
            if (reply.Sessions.Count == 0)
            {
                await ctx.Stdout.WriteLineAsync("no sessions");
                return ExitCodes.Success;
            }
            var console = ctx.OutConsole();
            console.Write(SessionsTable(reply.Sessions, console.Profile.Width));
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>
    /// The sessions as a table for a terminal <paramref name="width"/> columns wide: ids never wrap nor
    /// shrink (they are copied into commands); the plan's name gives way first (ellipsis), then the
    /// creation time and the plan are left out on narrow terminals.
    /// </summary>
    public static Table SessionsTable(IReadOnlyList<Session> sessions, int width)
    {
        var idWidth = sessions.Select(s => s.Id.Length).DefaultIfEmpty(2).Max();
        var stateWidth = sessions.Select(s => Formatting.StateName(s.State).Length).DefaultIfEmpty(5).Max();
        // Borders and padding: 3 columns per column, plus 1.
        var fixedWidth = idWidth + stateWidth + 9 + 8 + (4 * 3) + 1;
        var showCreated = fixedWidth + 19 + 3 + 12 <= width;
        var planWidth = width - fixedWidth - (showCreated ? 22 : 0) - 3;
        var showPlan = planWidth >= 8;
        var table = new Table();
        table.AddColumn(new TableColumn("ID").NoWrap().Width(idWidth));
        if (showPlan) table.AddColumn(new TableColumn("Plan").NoWrap());
        string Cut(string text) => text.Length <= planWidth ? text : text[..(planWidth - 1)] + "…";
        table.AddColumn(new TableColumn("State").NoWrap().Width(stateWidth));
        table.AddColumn(new TableColumn("Placed").NoWrap().RightAligned());
        table.AddColumn(new TableColumn("In doubt").NoWrap().RightAligned());
        if (showCreated) table.AddColumn(new TableColumn("Created (UTC)").NoWrap());
        foreach (var s in sessions)
        {
            var dots = s.Dots ?? new DotCounts();
            var row = new List<Spectre.Console.Rendering.IRenderable> { new Text(s.Id) };
            if (showPlan) row.Add(new Text(Cut(s.PlanName)));
            row.Add(new Text(Formatting.StateName(s.State)));
            row.Add(new Text(string.Format(CultureInfo.InvariantCulture, "{0}/{1}", dots.Placed, dots.Total)));
            row.Add(new Text(dots.InDoubt.ToString(CultureInfo.InvariantCulture)));
            if (showCreated) row.Add(new Text(s.CreatedAt is null ? "-" : s.CreatedAt.ToDateTimeOffset().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)));
            table.AddRow(row);
        }
        return table;
    }

    public static Command Build(CliCommands app)
    {
        var session = new Command("session", "One session: show, pause, resume, abort, resolve dots in doubt");
        session.Subcommands.Add(Simple(app, "show", "Show a session's summary", (c, r, ct) => c.Sessions.GetAsync(r, deadline: c.Deadline(), cancellationToken: ct).ResponseAsync));
        session.Subcommands.Add(Simple(app, "pause", "Pause: the current dot is finished safely, then the needle holds at hover", (c, r, ct) => c.Sessions.PauseAsync(r, deadline: c.Deadline(), cancellationToken: ct).ResponseAsync));
        session.Subcommands.Add(RunCommand.BuildResume(app));
        session.Subcommands.Add(Simple(app, "abort", "End the session for good (ABORTED); pending dots stay pending", (c, r, ct) => c.Sessions.AbortAsync(r, deadline: c.Deadline(), cancellationToken: ct).ResponseAsync));
        session.Subcommands.Add(BuildResolve(app));
        session.Subcommands.Add(Simple(app, "continue", "Move a stopped session's remaining dots to a new session of the same plan (its id is printed); the old one ends ABORTED and keeps the dots it placed",
            (c, r, ct) => c.Sessions.ContinueInNewSessionAsync(r, deadline: c.Deadline(), cancellationToken: ct).ResponseAsync));
        return session;
    }

    private static Command Simple(CliCommands app, string name, string description, Func<ControllerConnection, SessionRef, CancellationToken, Task<Session>> call)
    {
        var id = new Argument<string>("SESSION") { Description = "Session id" };
        var command = new Command(name, description) { id };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var s = await call(conn, new SessionRef { SessionId = parse.GetValue(id)! }, ct);
            ctx.Result(SessionView.Summary(s, CliCommands.ControllerArg(ctx)), JsonOutput.Session(s, ExitCodes.Success));
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command BuildResolve(CliCommands app)
    {
        var id = new Argument<string>("SESSION") { Description = "Session id" };
        var dots = new Option<string[]>("--dot") { Description = "A dot in doubt (repeat for several)", HelpName = "ID", Arity = ArgumentArity.OneOrMore };
        var all = new Option<bool>("--all-in-doubt") { Description = "Every dot in doubt" };
        var resolution = new Option<string>("--as") { Description = "placed (pigment seen), redo (place again), skip (leave out)", Required = true };
        resolution.AcceptOnlyFromAmong("placed", "redo", "skip");
        var operatorName = new Option<string?>("--operator") { Description = "Who decided (default: the current user)", HelpName = "NAME" };
        var command = new Command("resolve", "Decide what happens to dots left IN DOUBT after a fault. Inspect the skin first: "
            + "a dot must never be placed twice.")
        {
            id,
            dots,
            all,
            resolution,
            operatorName,
        };
        command.Validators.Add(result =>
        {
            if (result.GetResult(dots)?.Errors.Any() == true) return;
            var hasDots = (result.GetValue(dots)?.Length ?? 0) > 0;
            var hasAll = result.GetValue(all);
            if (hasDots == hasAll) result.AddError("give either --dot ID (one or more) or --all-in-doubt");
        });
        app.Bind(command, async (ctx, parse, ct) =>
        {
            var request = new ResolveDotsRequest
            {
                SessionId = parse.GetValue(id)!,
                AllInDoubt = parse.GetValue(all),
                Resolution = ParseResolution(parse.GetValue(resolution)!),
                Operator = parse.GetValue(operatorName) is { Length: > 0 } name ? name : ctx.Host.OperatorName,
            };
            request.DotIds.AddRange(parse.GetValue(dots) ?? []);
            using var conn = ctx.Connect();
            var s = await conn.Sessions.ResolveDotsAsync(request, deadline: conn.Deadline(), cancellationToken: ct);
            ctx.Result(SessionView.Summary(s, CliCommands.ControllerArg(ctx)), JsonOutput.Session(s, ExitCodes.Success));
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>"placed" / "redo" / "skip" → the proto resolution.</summary>
    public static DotResolution ParseResolution(string text) => text switch
    {
        "placed" => DotResolution.Placed,
        "redo" => DotResolution.Redo,
        "skip" => DotResolution.Skip,
        _ => throw new CliException(ExitCodes.Usage, $"--as must be placed, redo or skip (got '{text}')"),
    };
}
