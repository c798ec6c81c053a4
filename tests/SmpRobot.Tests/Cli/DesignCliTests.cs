using System.Text.Json;
using SmpRobot.Contracts.V1;
using SmpRobot.Operator.Cli;

namespace SmpRobot.Tests.Cli;

/// <summary>smp design new, check and plan, offline, as a practitioner uses them: a Norwood design to plans that smp plan check accepts.</summary>
public sealed class DesignCliTests : IDisposable
{
    private static readonly string NoController = "http://127.0.0.1:" + EndToEnd.RealProcess.FreePort();
    private readonly string _dir = Directory.CreateTempSubdirectory("smp-design-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static async Task<(int Code, string Stdout, string Stderr)> Smp(params string[] args)
    {
        var host = CliRunner.IsolatedHost(new Dictionary<string, string> { ["SMP_HARDWARE_DIR"] = Path.Combine(TestProfiles.RepoRoot, "hardware") });
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        // Sampling a whole design takes seconds on a busy machine: bounded generously, never unbounded.
        var code = await CliApp.RunAsync([.. args, "--controller", NoController], stdout, stderr, host, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(3));
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public async Task A_Norwood_IV_design_becomes_per_session_plans_pictures_and_metrics_that_the_plan_check_accepts()
    {
        var design = Path.Combine(_dir, "client-42.design.json");
        var (newCode, newOut, newErr) = await Smp("design", "new", "--norwood", "4", "--out", design);
        Assert.True(newCode == ExitCodes.Success, newErr);
        Assert.Contains("Norwood IV", newOut, StringComparison.Ordinal);
        // Written once: a second new to the same file is refused and changes nothing.
        var before = await File.ReadAllTextAsync(design);
        var (againCode, _, againErr) = await Smp("design", "new", "--norwood", "5", "--out", design);
        Assert.Equal(ExitCodes.Usage, againCode);
        Assert.Contains("exists", againErr, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllTextAsync(design));

        var (checkCode, checkOut, _) = await Smp("design", "check", design);
        Assert.Equal(ExitCodes.Success, checkCode);
        Assert.Contains("zone frontal: 70 dots/cm²", checkOut, StringComparison.Ordinal);

        var outDir = Path.Combine(_dir, "plans");
        var (planCode, planOut, planErr) = await Smp("design", "plan", design, "--out", outDir, "--json");
        Assert.True(planCode == ExitCodes.Success, planErr);
        var result = JsonDocument.Parse(planOut).RootElement;
        Assert.True(result.GetProperty("plansValid").GetBoolean());
        Assert.True(result.GetProperty("goalsMet").GetBoolean(), planErr);
        foreach (var name in new[] { "session-1.json", "session-2.json", "session-3.json", "session-1.png", "session-3-hairline.png", "all-sessions.png", "metrics.json" })
        {
            Assert.True(File.Exists(Path.Combine(outDir, name)), name);
        }
        // The head model is beside the plans, and each plan names it by its file and the SHA-256 of its bytes.
        var model = Path.Combine(outDir, "head-model.ply");
        var sha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(await File.ReadAllBytesAsync(model)));
        var source = Plan.Parser.ParseJson(await File.ReadAllTextAsync(Path.Combine(outDir, "session-2.json"))).Source;
        Assert.Equal(("head-model.ply", sha), (source.HeadModelFile, source.HeadModelSha256));
        var metrics = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(outDir, "metrics.json"))).RootElement;
        Assert.True(metrics.GetProperty("goals").GetProperty("allMet").GetBoolean());
        Assert.Contains("goals: density within 5% met", planErr, StringComparison.Ordinal);

        // The machine's own plan check accepts every session's plan.
        for (var k = 1; k <= 3; k++)
        {
            var (code, stdout, stderr) = await Smp("plan", "check", Path.Combine(outDir, $"session-{k}.json"), "--profile", Path.Combine(TestProfiles.RepoRoot, "hardware", "profiles", "sim.json"), "--json");
            Assert.True(code == ExitCodes.Success, stdout + stderr);
            Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("valid").GetBoolean());
        }
    }

    [Fact]
    public async Task A_broken_design_exits_2_naming_every_violation_and_writes_nothing()
    {
        var design = Path.Combine(_dir, "broken.design.json");
        var (code, _, err) = await Smp("design", "new", "--norwood", "3", "--out", design);
        Assert.True(code == ExitCodes.Success, err);
        var text = (await File.ReadAllTextAsync(design))
            .Replace("\"bandWidthMm\": 10", "\"bandWidthMm\": 40", StringComparison.Ordinal)
            .Replace("\"densityPerCm2\": 70", "\"densityPerCm2\": 400", StringComparison.Ordinal);
        await File.WriteAllTextAsync(design, text);

        var outDir = Path.Combine(_dir, "never");
        var (planCode, planOut, _) = await Smp("design", "plan", design, "--out", outDir);
        Assert.Equal(ExitCodes.Usage, planCode);
        Assert.Contains("hairline  hairline-band", planOut, StringComparison.Ordinal);
        Assert.Contains("zone frontal  density", planOut, StringComparison.Ordinal);
        // So dense that the machine's minimum spacing leaves no room for an irregular pattern, too.
        Assert.Contains("zone frontal  min-spacing", planOut, StringComparison.Ordinal);
        Assert.Contains("3 violations", planOut, StringComparison.Ordinal);
        Assert.False(Directory.Exists(outDir));

        await File.WriteAllTextAsync(design, "{\"name\":\"x\",\"units\":\"mm\",\"zones\":[{\"name\":\"a\",\"densty\":3}]}");
        var (jsonCode, jsonOut, _) = await Smp("design", "check", design);
        Assert.Equal(ExitCodes.Usage, jsonCode);
        Assert.Contains("design  json", jsonOut, StringComparison.Ordinal);
        Assert.Contains("densty", jsonOut, StringComparison.Ordinal);
    }
}
