using SmpRobot.Contracts.V1;
using SmpRobot.Operator.Cli.Commands;
using Spectre.Console;

namespace SmpRobot.Tests.Cli;

public class SessionsTableTests
{
    [Theory]
    [InlineData(64)]
    [InlineData(80)]
    [InlineData(160)]
    public void Session_ids_never_wrap_and_a_long_plan_name_gives_way(int width)
    {
        var sessions = new[]
        {
            new Session { Id = "s-20261202-214512-3f9a", PlanName = "demo crown (1500 dots, seed 20261123) (first 30 of 1500 dots)", State = SessionState.Paused, Dots = new DotCounts { Total = 30, Placed = 12 } },
            new Session { Id = "s-20261202-220001-0b1c", PlanName = "hairline", State = SessionState.Completed, Dots = new DotCounts { Total = 5, Placed = 5 } },
        };
        using var text = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(text), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
        console.Profile.Width = width;
        console.Write(SessionCommands.SessionsTable(sessions, width));
        var lines = text.ToString().Split('\n');
        foreach (var s in sessions) Assert.Contains(lines, l => l.Contains(s.Id, StringComparison.Ordinal));
        Assert.All(lines, l => Assert.True(l.TrimEnd('\r').Length <= width, $"'{l}' is wider than {width}"));
        if (width == 80) Assert.Contains(lines, l => l.Contains('…'));
        if (width == 160) Assert.Contains(lines, l => l.Contains("demo crown (1500 dots, seed 20261123) (first 30 of 1500 dots)", StringComparison.Ordinal));
    }
}
