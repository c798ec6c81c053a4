using SmpRobot.Operator.Cli;

namespace SmpRobot.Tests.Cli;

internal static class CliRunner
{
    /// <summary>A host that reads no real environment variables (SMP_CONTROLLER on the test machine must not leak in).</summary>
    public static CliHost IsolatedHost(Dictionary<string, string>? env = null, string? baseDirectory = null) => new()
    {
        GetEnvironmentVariable = name => env is not null && env.TryGetValue(name, out var v) ? v : null,
        BaseDirectory = baseDirectory ?? Path.GetTempPath(),
        OperatorName = "tester",
    };

    public static async Task<(int Code, string Stdout, string Stderr)> RunAsync(CliHost host, params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var code = await CliApp.RunAsync(args, stdout, stderr, host, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20));
        return (code, stdout.ToString(), stderr.ToString());
    }

    public static Task<(int Code, string Stdout, string Stderr)> RunAsync(params string[] args) => RunAsync(IsolatedHost(), args);
}
