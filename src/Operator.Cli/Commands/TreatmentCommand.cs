using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Google.Protobuf;
using SmpRobot.Contracts.V1;
using SmpRobot.Treatment.Design;
using Spectre.Console;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary><c>smp treatment start|next|touch-up|show|list|dots|match</c>: a client's treatment across weeks, made from its design.</summary>
internal static class TreatmentCommand
{
    private static readonly string[] ListColumns = ["ID", "Client", "Design", "Sessions", "Started (UTC)"];

    public static Command Build(CliCommands app)
    {
        var command = new Command("treatment", "A client's treatment across weeks: its sessions are made from the design (never from a loose plan file), and its record keeps every dot placed");
        command.Subcommands.Add(BuildStart(app));
        command.Subcommands.Add(BuildNext(app));
        command.Subcommands.Add(BuildTouchUp(app));
        command.Subcommands.Add(BuildShow(app));
        command.Subcommands.Add(BuildList(app));
        command.Subcommands.Add(BuildDots(app));
        command.Subcommands.Add(BuildMatch(app));
        return command;
    }

    private static Command BuildStart(CliCommands app)
    {
        var file = new Argument<string>("DESIGN") { Description = "Design file (proto3 JSON of smprobot.v1.TreatmentDesign); its head mesh is sent with it" };
        var client = new Option<string>("--client") { Description = "Pseudonymous client id (letters, digits, '.', '_', '-'), e.g. C-0042; never a name", Required = true, HelpName = "ID" };
        var command = new Command("start", "Start a treatment of DESIGN for a client: the controller checks the design on its machine, keeps it with its head model, and creates session 1") { file, client };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            var path = parse.GetValue(file)!;
            var loaded = DesignLoader.Load(path);
            if (loaded.Design is null)
            {
                throw new CliException(ExitCodes.Usage, $"design {path}: " + string.Join("; ", loaded.Violations.Select(v => v.Message)) + " (nothing was sent)");
            }
            var mesh = loaded.Design.Head?.Mesh;
            if (string.IsNullOrWhiteSpace(mesh)) throw new CliException(ExitCodes.Usage, $"design {path} names no head mesh (head.mesh): nothing was sent");
            var meshPath = Path.IsPathRooted(mesh) ? mesh : Path.Combine(loaded.Directory, mesh);
            byte[] meshBytes;
            try
            {
                meshBytes = await File.ReadAllBytesAsync(meshPath, ct);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CliException(ExitCodes.Usage, $"the head mesh {meshPath} the design names cannot be read: {e.Message} (nothing was sent)");
            }
            var json = await File.ReadAllTextAsync(path, ct);
            using var conn = ctx.Connect();
            ctx.Info($"checking and sampling {loaded.Design.Name} on the controller…");
            var info = await conn.Treatments.StartTreatmentAsync(new StartTreatmentRequest
            {
                ClientId = parse.GetValue(client)!,
                DesignJson = json,
                HeadModel = ByteString.CopyFrom(meshBytes),
                HeadModelFile = Path.GetFileName(meshPath),
            }, deadline: conn.Deadline(ControllerConnection.TreatmentTimeout), cancellationToken: ct);
            var first = info.Sessions[^1];
            ctx.Result(Summary(info) + $"\nnext: smp run --session {first.Session.Id}   (session 1 of {info.SessionCount})", Json(info));
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command BuildNext(CliCommands app)
    {
        var id = new Argument<string>("TREATMENT") { Description = "Treatment id (smp treatment list)" };
        var early = new Option<string?>("--early") { Description = "Make it before the design's days between sessions have passed, and say why (recorded)", HelpName = "REASON" };
        var command = new Command("next", "Create the design's next session of a treatment (the last one must be over, with no dot in doubt)") { id, early };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var info = await conn.Treatments.NextSessionAsync(new NextSessionRequest { TreatmentId = parse.GetValue(id)!, EarlyReason = parse.GetValue(early) ?? "" },
                deadline: conn.Deadline(ControllerConnection.TreatmentTimeout), cancellationToken: ct);
            var made = info.Sessions[^1];
            ctx.Result(Summary(info) + $"\nnext: smp run --session {made.Session.Id}   (session {made.Number} of {info.SessionCount})", Json(info));
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command BuildTouchUp(CliCommands app)
    {
        var id = new Argument<string>("TREATMENT") { Description = "Treatment id (smp treatment list)" };
        var command = new Command("touch-up", "Create a touch-up of a treatment whose design's sessions are done: it restores the design's density where dots faded or are missing, there only. "
            + "Every dot on record is a candidate; when it runs (smp run --session), the camera first finds the dots still there at each head position, and only the faded or missing ones are placed")
        {
            id,
        };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var info = await conn.Treatments.TouchUpAsync(new TreatmentRef { TreatmentId = parse.GetValue(id)! }, deadline: conn.Deadline(ControllerConnection.TreatmentTimeout), cancellationToken: ct);
            var made = info.Sessions[^1];
            ctx.Result(Summary(info) + Inv($"\ntouch-up {made.Number} ({made.Session.Id}): {made.Session.Dots?.Total ?? 0} dots on record to survey. ")
                + $"Next: smp run --session {made.Session.Id}   (at each head position it probes the scalp, the camera finds the dots still there, and only the faded or missing ones are placed)", Json(info));
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command BuildShow(CliCommands app)
    {
        var id = new Argument<string>("TREATMENT") { Description = "Treatment id" };
        var command = new Command("show", "A treatment and its sessions") { id };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var info = await conn.Treatments.GetTreatmentAsync(new TreatmentRef { TreatmentId = parse.GetValue(id)! }, deadline: conn.Deadline(), cancellationToken: ct);
            ctx.Result(Summary(info), Json(info));
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command BuildList(CliCommands app)
    {
        var client = new Option<string?>("--client") { Description = "Only this client's treatments", HelpName = "ID" };
        var command = new Command("list", "Treatments, newest first") { client };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var reply = await conn.Treatments.ListTreatmentsAsync(new ListTreatmentsRequest { ClientId = parse.GetValue(client) ?? "" }, deadline: conn.Deadline(), cancellationToken: ct);
            if (ctx.Json)
            {
                ctx.WriteJson(new JsonObject { ["treatments"] = new JsonArray([.. reply.Treatments.Select(t => (JsonNode)Json(t))]), ["exitCode"] = ExitCodes.Success });
                return ExitCodes.Success;
            }
            if (reply.Treatments.Count == 0)
            {
                await ctx.Stdout.WriteLineAsync("no treatments");
                return ExitCodes.Success;
            }
            var table = new Table();
            foreach (var column in ListColumns) table.AddColumn(new TableColumn(column).NoWrap());
            foreach (var t in reply.Treatments)
            {
                table.AddRow(t.Id, t.ClientId, Markup.Escape(t.DesignName), Inv($"{t.Sessions.Count(s => !s.TouchUp)}/{t.SessionCount}"),
                    t.CreatedAt.ToDateTimeOffset().ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture));
            }
            ctx.OutConsole().Write(table);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command BuildDots(CliCommands app)
    {
        var id = new Argument<string>("TREATMENT") { Description = "Treatment id" };
        var command = new Command("dots", "The treatment's record: every dot of every session, its point in the scalp frame S, state and the camera's check (--json for all of them)") { id };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            using var call = conn.Treatments.ListTreatmentDots(new TreatmentRef { TreatmentId = parse.GetValue(id)! }, deadline: conn.Deadline(), cancellationToken: ct);
            var dots = new List<TreatmentDot>();
            while (await call.ResponseStream.MoveNext(ct)) dots.AddRange(call.ResponseStream.Current.Dots);
            var bySession = dots.GroupBy(d => d.SessionNumber).OrderBy(g => g.Key).Select(g => new JsonObject
            {
                ["session"] = g.Key,
                ["sessionId"] = g.First().SessionId,
                ["dots"] = g.Count(),
                ["placed"] = g.Count(d => d.State == DotState.Placed),
                ["checked"] = g.Count(d => d.Check is not (DotCheck.NotChecked or DotCheck.Unspecified)),
                ["flagged"] = g.Count(d => d.Check is DotCheck.OffTarget or DotCheck.NotSeen),
            }).ToList();
            var json = new JsonObject
            {
                ["sessions"] = new JsonArray([.. bySession]),
                ["dots"] = new JsonArray([.. dots.Select(d => (JsonNode)JsonOutput.Message(d))]),
                ["exitCode"] = ExitCodes.Success,
            };
            var text = string.Join("\n", bySession.Select(s => Inv($"session {s["session"]} ({s["sessionId"]}): {s["placed"]}/{s["dots"]} placed, {s["checked"]} checked by the camera, {s["flagged"]} flagged")));
            // The flagged dots themselves: what the operator inspects.
            text += string.Concat(dots.Where(d => d.Check is DotCheck.OffTarget or DotCheck.NotSeen).Select(d => d.Check == DotCheck.NotSeen
                ? Inv($"\n  flagged: {d.DotId} (session {d.SessionNumber}) not seen where it was placed")
                : Inv($"\n  flagged: {d.DotId} (session {d.SessionNumber}) seen {d.CheckOffsetMm:0.00} mm off its target")));
            ctx.Result(text.Length == 0 ? "no dots" : text, json);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command BuildMatch(CliCommands app)
    {
        var id = new Argument<string>("SESSION") { Description = "A later session of a treatment (session 2 on)" };
        var patch = new Option<uint>("--patch") { Description = "Head position (default: the one its next start or resume enters)", HelpName = "N" };
        var picture = new Option<string?>("--picture") { Description = "Write the match drawn (PNG) to FILE", HelpName = "FILE" };
        var command = new Command("match", "Find the earlier sessions' dots with the camera and match them to the record: where today's board sits on the scalp. "
            + "Accepted, the session's dots are placed relative to it and new dots too close to a dot found are left out. Run it after smp surface probe, before the start")
        {
            id, patch, picture,
        };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            var m = await conn.Treatments.MatchEarlierDotsAsync(new MatchEarlierDotsRequest { SessionId = parse.GetValue(id)!, Patch = parse.GetValue(patch) },
                deadline: conn.Deadline(ControllerConnection.TreatmentTimeout), cancellationToken: ct);
            if (parse.GetValue(picture) is { } file && !m.PicturePng.IsEmpty) await File.WriteAllBytesAsync(file, m.PicturePng.ToByteArray(), ct);
            var json = JsonOutput.Message(m);
            json.Remove("picturePng");
            json["exitCode"] = m.Accepted ? ExitCodes.Success : ExitCodes.Failure;
            var text = m.Accepted
                ? Inv($"head position {m.Patch}: matched {m.Matched} earlier dots ({m.ExpectedInView} expected in view, {m.Found} spots found); residual RMS {m.ResidualRmsMm:0.000} mm, p95 {m.ResidualP95Mm:0.000} mm; the board sits {m.MovedFromInitialMm:0.00} mm from where probing put it; registration {m.RegistrationId}; {m.LeftOut} new dot(s) left out for spacing")
                : Inv($"head position {m.Patch}: NOT matched ({m.Reason}); {m.Found} spots found, {m.ExpectedInView} earlier dots expected in view. Nothing was changed: check that the scalp is uncovered and that this is the client's treatment, then try again");
            ctx.Result(text, json);
            return m.Accepted ? ExitCodes.Success : ExitCodes.Failure;
        });
        return command;
    }

    /// <summary>A treatment in a few lines: who, what, and each session's state.</summary>
    public static string Summary(TreatmentInfo t)
    {
        var lines = new List<string>
        {
            Inv($"treatment {t.Id}: client {t.ClientId}, design \"{t.DesignName}\" ({t.SessionCount} sessions), started {t.CreatedAt.ToDateTimeOffset():yyyy-MM-dd HH:mm} UTC by {t.CreatedBy}"),
        };
        foreach (var s in t.Sessions)
        {
            var dots = s.Session.Dots ?? new DotCounts();
            lines.Add(Inv($"  {(s.TouchUp ? "touch-up" : "session")} {s.Number}: {s.Session.Id}  {Formatting.StateName(s.Session.State)}  {dots.Placed}/{dots.Total} placed{(dots.InDoubt > 0 ? $", {dots.InDoubt} in doubt" : "")}{(dots.Skipped > 0 ? $", {dots.Skipped} skipped" : "")}"));
        }
        return string.Join("\n", lines);
    }

    private static JsonObject Json(TreatmentInfo t)
    {
        var json = JsonOutput.Message(t);
        json["exitCode"] = ExitCodes.Success;
        return json;
    }

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
