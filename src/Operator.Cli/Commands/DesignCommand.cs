using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using SmpRobot.Contracts.V1;
using SmpRobot.Machine;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Heads;
using SmpRobot.Treatment.Mesh;
using SmpRobot.Treatment.Metrics;
using SmpRobot.Treatment.Planning;
using SmpRobot.Treatment.Preview;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary>
/// <c>smp design new|check|plan|head</c>: treatment designs, offline (no controller): a starting design for a
/// Norwood stage, the design's checks, and the plans, pictures and metrics of every session.
/// </summary>
internal static class DesignCommand
{
    /// <summary>The bundled head model, relative to the hardware folder.</summary>
    public const string DefaultHead = "heads/adult-synthetic.head.json";

    /// <summary>The profile designs are checked against when none is given, relative to the hardware folder.</summary>
    public const string DefaultProfile = "profiles/sim.json";

    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default);

    public static Command Build(CliCommands app)
    {
        var design = new Command("design", "Treatment designs (offline): a starting design for a Norwood stage, its checks, and the plans, pictures and metrics of every session");
        design.Subcommands.Add(BuildNew(app));
        design.Subcommands.Add(BuildCheck(app));
        design.Subcommands.Add(BuildPlan(app));
        design.Subcommands.Add(BuildHead(app));
        return design;
    }

    private static Option<string?> ProfileOption() => new("--profile")
    {
        Description = "Machine profile the design and its plans are checked against (default: hardware/" + DefaultProfile + ")",
        HelpName = "FILE",
    };

    private static Command BuildNew(CliCommands app)
    {
        var norwood = new Option<int>("--norwood") { Description = "Norwood stage, 2-7", Required = true, HelpName = "STAGE" };
        var output = new Option<string>("--out") { Description = "Design file to write (refused if it exists)", Required = true, HelpName = "FILE" };
        var head = new Option<string?>("--head") { Description = "Head model (*.head.json, a HeadModel with its mesh; default: the bundled hardware/" + DefaultHead + ")", HelpName = "FILE" };
        var seed = new Option<uint>("--seed") { Description = "Seed of the design's random choices (default 1)", DefaultValueFactory = _ => 1 };
        var command = new Command("new", "Write a starting design for a Norwood stage: a conservative hairline about 15 mm above the forehead crease (frontotemporal recession kept), "
            + "the stage's zones at default densities, and three sessions (30 %, 35 %, 35 %; the first the lightest)")
        {
            norwood, output, head, seed,
        };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            var stage = parse.GetValue(norwood);
            if (stage is < NorwoodPresets.MinStage or > NorwoodPresets.MaxStage)
            {
                throw new CliException(ExitCodes.Usage, $"--norwood must be {NorwoodPresets.MinStage}-{NorwoodPresets.MaxStage} (got {stage})");
            }
            var outPath = Path.GetFullPath(parse.GetValue(output)!);
            if (File.Exists(outPath) || Directory.Exists(outPath)) throw new CliException(ExitCodes.Usage, $"{outPath} exists: give another --out (nothing was written)");
            var outDir = Path.GetDirectoryName(outPath)!;
            if (!Directory.Exists(outDir)) throw new CliException(ExitCodes.Usage, $"folder {outDir} does not exist (nothing was written)");
            var headPath = parse.GetValue(head) ?? FindHardware(ctx.Host, DefaultHead);
            var (model, mesh) = LoadHead(headPath);
            // The design names its mesh relative to itself.
            var meshPath = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(headPath))!, model.Mesh));
            model.Mesh = Path.GetRelativePath(outDir, meshPath);
            var created = NorwoodPresets.Create(stage, model, mesh, parse.GetValue(seed));
            await File.WriteAllTextAsync(outPath, DesignLoader.Format(created), ct);
            var sessions = created.Sessions.Shares.Count;
            ctx.Result(string.Create(CultureInfo.InvariantCulture,
                $"wrote {outPath}: {created.Name}, zones {string.Join(", ", created.Zones.Select(z => z.Name))}, {sessions} sessions\nnext: smp design check {DemoCommand.ShellWord(outPath)}, then smp design plan {DemoCommand.ShellWord(outPath)} --out DIR"),
                new JsonObject
                {
                    ["design"] = outPath,
                    ["name"] = created.Name,
                    ["zones"] = new JsonArray([.. created.Zones.Select(z => (JsonNode)z.Name)]),
                    ["sessions"] = sessions,
                    ["exitCode"] = ExitCodes.Success,
                });
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command BuildCheck(CliCommands app)
    {
        var file = new Argument<string>("DESIGN") { Description = "Design file (proto3 JSON of smprobot.v1.TreatmentDesign)" };
        var profile = ProfileOption();
        var command = new Command("check", "Validate a design: prints every violation as 'where  rule  message' and exits 2, or what each session would place")
        {
            file, profile,
        };
        app.Bind(command, (ctx, parse, ct) =>
        {
            var path = parse.GetValue(file)!;
            var machine = LoadProfile(ctx, parse.GetValue(profile));
            var check = Check(ctx, path, machine);
            var design = check.Design!;
            var expected = new Treatment.Sampling.DensityField(design).ExpectedDotsPerRegion();
            var total = expected.Sum();
            var lines = new List<string> { string.Create(CultureInfo.InvariantCulture, $"design {path} is valid (machine {machine.Name}): {design.Source.Name}") };
            for (var r = 0; r < design.Regions.Count; r++)
            {
                var region = design.Regions[r];
                lines.Add(string.Create(CultureInfo.InvariantCulture,
                    $"  {(region.IsScar ? "scar" : "zone")} {region.Name}: {region.DensityPerMm2 * 100:0} dots/cm², {region.Needle.Label}, depth {region.DepthMm:0.00} mm, about {expected[r]:N0} dots"));
            }
            for (var k = 0; k < design.SessionCount; k++)
            {
                lines.Add(string.Create(CultureInfo.InvariantCulture, $"  session {k + 1}: {design.SessionShares[k]:P0} of the final density, about {total * design.SessionShares[k]:N0} dots"));
            }
            ctx.Result(string.Join('\n', lines), new JsonObject
            {
                ["valid"] = true,
                ["design"] = design.Source.Name,
                ["profileName"] = machine.Name,
                ["expectedDots"] = Math.Round(total),
                ["regions"] = new JsonArray([.. design.Regions.Select((r, i) => (JsonNode)new JsonObject { ["name"] = r.Name, ["scar"] = r.IsScar, ["expectedDots"] = Math.Round(expected[i]) })]),
                ["exitCode"] = ExitCodes.Success,
            });
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    private static Command BuildPlan(CliCommands app)
    {
        var file = new Argument<string>("DESIGN") { Description = "Design file (proto3 JSON of smprobot.v1.TreatmentDesign)" };
        var output = new Option<string>("--out") { Description = "Folder to write into (created; refused if it exists and is not empty)", Required = true, HelpName = "DIR" };
        var profile = ProfileOption();
        var command = new Command("plan", "Sample the design and write, per session, a plan (session-N.json), its pictures (session-N.png and a close-up of the hairline), "
            + "a picture of all sessions together and metrics.json; prints the metrics. Works offline.")
        {
            file, output, profile,
        };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            var path = parse.GetValue(file)!;
            var outDir = Path.GetFullPath(parse.GetValue(output)!);
            if (File.Exists(outDir) || (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any()))
            {
                throw new CliException(ExitCodes.Usage, $"{outDir} exists and is not empty: give a new folder (nothing was written)");
            }
            var machine = LoadProfile(ctx, parse.GetValue(profile));
            var design = Check(ctx, path, machine).Design!;
            ctx.Info($"sampling {design.Source.Name} on its head mesh ({design.Mesh.FaceCount:N0} triangles)…");
            var dots = DesignPlanner.Generate(design);
            var metrics = DesignMetricsCalculator.Measure(dots);
            var plans = DesignPlans.Build(dots, machine);

            Directory.CreateDirectory(outDir);
            var written = new List<string>();
            string Write(string name, string text)
            {
                var target = Path.Combine(outDir, name);
                File.WriteAllText(target, text);
                written.Add(target);
                return target;
            }
            // The head model beside the plans, under the name they give it: smp run sends it with the session.
            var model = Path.Combine(outDir, DesignPlans.HeadModelFileName(design.MeshPath));
            File.Copy(design.MeshPath, model);
            written.Add(model);
            foreach (var session in plans.Sessions)
            {
                Write($"session-{session.Session}.json", Formatter.Format(session.Plan) + "\n");
                var picture = Path.Combine(outDir, $"session-{session.Session}.png");
                DesignPreview.WritePng(dots, new HashSet<int> { session.Session }, $"{design.Source.Name}: session {session.Session} of {design.SessionCount} ({session.Plan.Dots.Count:N0} dots)", picture);
                written.Add(picture);
                if (design.Hairline is { } hairline)
                {
                    var detail = Path.Combine(outDir, $"session-{session.Session}-hairline.png");
                    var middle = hairline.Line.PointAt(hairline.Line.LengthMm / 2) + (design.Map.Up * 8);
                    DesignPreview.WriteDetailPng(dots, Enumerable.Range(1, session.Session).ToHashSet(), middle, 60, 40,
                        $"hairline close-up after session {session.Session} (60 x 40 mm, true size and shade)", detail);
                    written.Add(detail);
                }
            }
            var all = Path.Combine(outDir, "all-sessions.png");
            DesignPreview.WritePng(dots, null, $"{design.Source.Name}: all {design.SessionCount} sessions ({dots.Dots.Count:N0} dots)", all);
            written.Add(all);
            var metricsJson = MetricsJson(design, dots, metrics, plans, machine);
            Write("metrics.json", metricsJson.ToJsonString(Indented) + "\n");

            foreach (var line in Report(design, dots, metrics, plans, machine)) await (ctx.Json ? ctx.Stderr : ctx.Stdout).WriteLineAsync(line);
            var plansOk = plans.Sessions.All(s => s.Check.IsValid) && plans.Unreachable.Count == 0;
            var result = new JsonObject
            {
                ["out"] = outDir,
                ["files"] = new JsonArray([.. written.Select(w => (JsonNode)w)]),
                ["dots"] = dots.Dots.Count,
                ["plansValid"] = plansOk,
                ["goalsMet"] = metrics.Goals.AllMet,
                ["metrics"] = metricsJson,
                ["exitCode"] = ExitCodes.Success,
            };
            ctx.Result($"wrote {written.Count} files to {outDir}", result);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command BuildHead(CliCommands app)
    {
        var output = new Option<string>("--out") { Description = "Folder to write adult-synthetic.ply and adult-synthetic.head.json into (must exist)", Required = true, HelpName = "DIR" };
        var command = new Command("head", "Write the bundled synthetic adult head (the mesh hardware/heads/ holds, and its landmarks), as generated") { output };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            var dir = Path.GetFullPath(parse.GetValue(output)!);
            if (!Directory.Exists(dir)) throw new CliException(ExitCodes.Usage, $"folder {dir} does not exist");
            var (mesh, landmarks) = SyntheticHead.Generate();
            var meshPath = Path.Combine(dir, "adult-synthetic.ply");
            MeshWriter.WritePly(mesh, meshPath, ["SmpRobot synthetic adult head, frame S (mm): x right, y front, z up; smp design head"]);
            var model = NorwoodPresets.HeadModel("adult-synthetic.ply", landmarks,
                "Synthetic adult head: an egg-shaped ovoid about 57 cm around above the brows, the vertex 100 mm above the brow line; cut open below the ears like a scalp scan");
            var headPath = Path.Combine(dir, "adult-synthetic.head.json");
            await File.WriteAllTextAsync(headPath, JsonSerializer.Serialize(JsonDocument.Parse(Formatter.Format(model)).RootElement, Indented) + "\n", ct);
            ctx.Result($"wrote {meshPath} ({mesh.Vertices.Count:N0} vertices, {mesh.FaceCount:N0} triangles) and {headPath}", new JsonObject
            {
                ["mesh"] = meshPath,
                ["head"] = headPath,
                ["triangles"] = mesh.FaceCount,
                ["exitCode"] = ExitCodes.Success,
            });
            return ExitCodes.Success;
        });
        return command;
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>hardware/<paramref name="relative"/> under $SMP_HARDWARE_DIR, else in the first folder above the smp executable that holds it.</summary>
    private static string FindHardware(CliHost host, string relative)
    {
        var hardware = host.GetEnvironmentVariable("SMP_HARDWARE_DIR");
        if (!string.IsNullOrWhiteSpace(hardware)) return Path.Combine(hardware, relative);
        for (var dir = new DirectoryInfo(host.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "hardware", relative);
            if (File.Exists(candidate)) return candidate;
        }
        throw new CliException(ExitCodes.Usage, $"cannot find hardware/{relative} above {host.BaseDirectory}: set SMP_HARDWARE_DIR or name the file");
    }

    private static MachineProfile LoadProfile(CommandContext ctx, string? path)
    {
        try
        {
            return MachineProfile.Load(path ?? FindHardware(ctx.Host, DefaultProfile));
        }
        catch (InvalidDataException e)
        {
            throw new CliException(ExitCodes.Usage, e.Message);
        }
    }

    private static (HeadModel Model, TriangleMesh Mesh) LoadHead(string path)
    {
        HeadModel model;
        try
        {
            model = JsonParser.Default.Parse<HeadModel>(File.ReadAllText(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidProtocolBufferException or InvalidJsonException or FormatException)
        {
            throw new CliException(ExitCodes.Usage, $"head model {path} cannot be read: {e.Message}");
        }
        try
        {
            var mesh = MeshReader.Read(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, model.Mesh));
            return (model, mesh);
        }
        catch (Exception e) when (e is MeshFormatException or IOException or UnauthorizedAccessException)
        {
            throw new CliException(ExitCodes.Usage, $"head model {path}: {e.Message}");
        }
    }

    /// <summary>Loads and checks a design; every violation printed as 'where  rule  message' and exit 2 when there is one.</summary>
    private static DesignCheck Check(CommandContext ctx, string path, MachineProfile machine)
    {
        var check = DesignResolver.Resolve(DesignLoader.Load(path), machine);
        if (check.IsValid) return check;
        var output = ctx.Json ? ctx.Stderr : ctx.Stdout;
        foreach (var v in check.Violations) output.WriteLine(v.ToString());
        var count = check.Violations.Count == 1 ? "1 violation" : $"{check.Violations.Count} violations";
        output.WriteLine(count);
        throw new CliException(ExitCodes.Usage, $"design {path} is invalid: {count}", new JsonObject
        {
            ["violations"] = new JsonArray([.. check.Violations.Select(v => (JsonNode)new JsonObject { ["where"] = v.Where, ["rule"] = v.Rule, ["message"] = v.Message })]),
            ["totalViolations"] = check.Violations.Count,
        })
        { AlreadyReported = true };
    }

    private static IEnumerable<string> Report(ResolvedDesign design, DesignDots dots, DesignMetrics metrics, DesignPlanSet plans, MachineProfile machine)
    {
        var inv = CultureInfo.InvariantCulture;
        yield return string.Create(inv, $"{design.Source.Name}: {dots.Dots.Count:N0} dots in {design.SessionCount} sessions ({string.Join(" + ", metrics.DotsPerSession.Select(n => n.ToString("N0", inv)))}), sampled in {dots.SamplingTime.TotalSeconds:0.0} s");
        yield return "zone / session      added dots/cm² (target, error)   on the scalp after it: dots/cm² (error)  rho   R     NN-CV  closest to earlier";
        foreach (var region in metrics.Regions)
        {
            foreach (var s in region.Sessions)
            {
                var earlier = double.IsNaN(s.MinDistanceToEarlierMm) ? "-" : string.Create(inv, $"{s.MinDistanceToEarlierMm:0.00} mm ({s.MinDistanceToEarlierOverSpacing:0.00}x spacing)");
                yield return string.Create(inv,
                    $"{(region.Name + " s" + s.Session),-18}  {s.Own.DensityPerCm2,5:0.0} ({s.TargetDensityPerCm2:0.0}, {Signed(s.OwnDensityErrorPct),5}%)            {s.Cumulative.DensityPerCm2,5:0.0} ({Signed(s.CumulativeDensityErrorPct),5}%)                 {s.Cumulative.Rho,5:0.000} {s.Cumulative.ClarkEvans,5:0.00} {s.Cumulative.NearestCv,5:0.00}  {earlier}");
            }
        }
        if (metrics.Hairline is { } h)
        {
            yield return "hairline band, front to back (dots/cm², target): " + string.Join("  ", h.Bins.Select(b => string.Create(inv, $"{b.DensityPerCm2:0.0} ({b.TargetPerCm2:0.0})")))
                + string.Create(inv, $"; {(h.Rising ? "rising" : "NOT RISING")}; {h.DotsAhead} single dots ahead of the line; mirror match {h.MirrorMatchFraction:P0}, halves {h.LineMirrorDifferenceMm:0.0} mm apart");
        }
        var g = metrics.Goals;
        yield return string.Create(inv,
            $"goals: density within {DesignGoals.DensityTolerancePct:0}% {Mark(g.DensityOk)} (worst {g.DensityErrorMaxPct:0.0}%); rho {DesignGoals.RhoLow}-{DesignGoals.RhoHigh} {Mark(g.RhoOk)} ({g.RhoMin:0.000}-{g.RhoMax:0.000}); R >= {DesignGoals.ClarkEvansLow} {Mark(g.ClarkEvansOk)} ({g.ClarkEvansMin:0.00}); ")
            + string.Create(inv, $"later sessions keep the spacing {Mark(g.CrossSessionOk)} ({g.CrossSessionMinOverSpacing:0.00}x); no dot in an exclusion {Mark(g.ExclusionsOk)}; hairline rising and not mirrored {Mark(g.HairlineOk)}");
        yield return string.Create(inv, $"head positions: {plans.Patches.Count} (needle within {machine.MaxNeedleTiltDeg:0.#}° of the skin normal, machine {machine.Name})")
            + (plans.Unreachable.Count > 0 ? string.Create(inv, $"; {plans.Unreachable.Count} dot(s) no position reaches, left out") : "");
        foreach (var session in plans.Sessions)
        {
            yield return session.Check.IsValid
                ? string.Create(inv, $"session-{session.Session}.json: {session.Plan.Dots.Count:N0} dots in {session.Plan.Patches.Count} head positions; passes machine {machine.Name}'s plan checks")
                : string.Create(inv, $"session-{session.Session}.json: {session.Plan.Dots.Count:N0} dots; machine {machine.Name}'s plan checks find {session.Check.TotalViolations} violation(s), e.g. {session.Check.Violations[0].Rule}: {session.Check.Violations[0].Message}");
        }
    }

    private static string Mark(bool ok) => ok ? "met" : "NOT MET";

    private static string Signed(double value) => Math.Round(value, 1) == 0 ? "0.0" : value.ToString("+0.0;-0.0", CultureInfo.InvariantCulture);

    private static JsonObject MetricsJson(ResolvedDesign design, DesignDots dots, DesignMetrics metrics, DesignPlanSet plans, MachineProfile machine)
    {
        static JsonNode? Num(double v) => double.IsFinite(v) ? Math.Round(v, 4) : null;
        JsonObject Pattern(PatternStats p) => new()
        {
            ["dots"] = p.Count,
            ["densityPerCm2"] = Num(p.DensityPerCm2),
            ["minDistanceMm"] = Num(p.MinDistanceMm),
            ["meanNearestMm"] = Num(p.MeanNearestMm),
            ["rho"] = Num(p.Rho),
            ["clarkEvans"] = Num(p.ClarkEvans),
            ["nearestCv"] = Num(p.NearestCv),
        };
        var g = metrics.Goals;
        return new JsonObject
        {
            ["design"] = design.Source.Name,
            ["designSha256"] = design.SourceSha256,
            ["profile"] = machine.Name,
            ["dots"] = dots.Dots.Count,
            ["dotsPerSession"] = new JsonArray([.. metrics.DotsPerSession.Select(n => (JsonNode)n)]),
            ["candidates"] = dots.Sampling.Candidates,
            ["samplingSeconds"] = Num(dots.SamplingTime.TotalSeconds),
            ["regions"] = new JsonArray([.. metrics.Regions.Select(r => (JsonNode)new JsonObject
            {
                ["name"] = r.Name,
                ["scar"] = r.IsScar,
                ["targetDensityPerCm2"] = Num(r.TargetDensityPerCm2),
                ["minSpacingMm"] = Num(r.MinSpacingMm),
                ["bodyAreaCm2"] = Num(r.BodyAreaCm2),
                ["bandAreaCm2"] = Num(r.BandAreaCm2),
                ["sessions"] = new JsonArray([.. r.Sessions.Select(s => (JsonNode)new JsonObject
                {
                    ["session"] = s.Session,
                    ["dots"] = s.Dots,
                    ["targetDensityPerCm2"] = Num(s.TargetDensityPerCm2),
                    ["own"] = Pattern(s.Own),
                    ["ownDensityErrorPct"] = Num(s.OwnDensityErrorPct),
                    ["cumulativeTargetPerCm2"] = Num(s.CumulativeTargetPerCm2),
                    ["cumulative"] = Pattern(s.Cumulative),
                    ["cumulativeDensityErrorPct"] = Num(s.CumulativeDensityErrorPct),
                    ["minDistanceToEarlierMm"] = Num(s.MinDistanceToEarlierMm),
                    ["minDistanceToEarlierOverSpacing"] = Num(s.MinDistanceToEarlierOverSpacing),
                })]),
            })]),
            ["hairline"] = metrics.Hairline is not { } h ? null : new JsonObject
            {
                ["bins"] = new JsonArray([.. h.Bins.Select(b => (JsonNode)new JsonObject { ["from"] = b.From, ["to"] = b.To, ["areaCm2"] = Num(b.AreaCm2), ["densityPerCm2"] = Num(b.DensityPerCm2), ["targetPerCm2"] = Num(b.TargetPerCm2) })]),
                ["rising"] = h.Rising,
                ["dotsAhead"] = h.DotsAhead,
                ["mirrorMatchFraction"] = Num(h.MirrorMatchFraction),
                ["lineMirrorDifferenceMm"] = Num(h.LineMirrorDifferenceMm),
            },
            ["goals"] = new JsonObject
            {
                ["densityErrorMaxPct"] = Num(g.DensityErrorMaxPct),
                ["rhoMin"] = Num(g.RhoMin),
                ["rhoMax"] = Num(g.RhoMax),
                ["clarkEvansMin"] = Num(g.ClarkEvansMin),
                ["crossSessionMinOverSpacing"] = Num(g.CrossSessionMinOverSpacing),
                ["dotsInExclusions"] = g.DotsInExclusions,
                ["hairlineRising"] = g.HairlineRising,
                ["hairlineMirrorMatchFraction"] = Num(g.HairlineMirrorMatchFraction),
                ["allMet"] = g.AllMet,
            },
            ["headPositions"] = new JsonArray([.. plans.Patches.Select(p => (JsonNode)new JsonObject { ["number"] = p.Number, ["instruction"] = p.Instruction, ["maxTiltDeg"] = Num(p.MaxTiltDeg) })]),
            ["unreachableDots"] = new JsonArray([.. plans.Unreachable.Select(d => (JsonNode)d.Id)]),
            ["plans"] = new JsonArray([.. plans.Sessions.Select(s => (JsonNode)new JsonObject
            {
                ["session"] = s.Session,
                ["file"] = $"session-{s.Session}.json",
                ["dots"] = s.Plan.Dots.Count,
                ["headPositions"] = s.Plan.Patches.Count,
                ["valid"] = s.Check.IsValid,
                ["violations"] = s.Check.TotalViolations,
            })]),
        };
    }
}
