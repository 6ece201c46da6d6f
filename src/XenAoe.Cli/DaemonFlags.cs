using System.CommandLine;
using XenAoe.Agents.Configuration;

namespace XenAoe.Cli;

/// <summary>
/// The flags of a <c>serve</c> command, one per key of the daemon's <see cref="ConfigSchema"/>, and <c>--config</c>. Every flag
/// is a string: <see cref="DaemonSettings"/> checks the value whichever source it came from, with the same messages.
/// </summary>
internal sealed class DaemonFlags
{
    private readonly ConfigSchema _schema;
    private readonly Option<string> _config;
    private readonly List<(ConfigKey Key, Option Option)> _flags = [];

    public DaemonFlags(Command command, ConfigSchema schema)
    {
        _schema = schema;
        _config = new Option<string>("--config") { Description = $"Configuration file (INI); default {schema.DefaultFile} when it exists" };
        command.Options.Add(_config);
        foreach (var key in schema.Keys)
        {
            var description = key.Default.Length == 0 ? key.Description : $"{key.Description} Default: {key.Default}.";
            Option option = key.Multiple
                ? new Option<string[]>(key.Flag, Aliases(key)) { Description = description + " Repeat for each." }
                : new Option<string>(key.Flag, Aliases(key)) { Description = description };
            command.Options.Add(option);
            _flags.Add((key, option));
        }
    }

    /// <exception cref="ConfigException">See <see cref="DaemonSettings.Load"/>.</exception>
    public DaemonSettings Load(ParseResult parse)
    {
        var given = new Dictionary<string, string?>();
        foreach (var (key, option) in _flags)
        {
            if (parse.GetResult(option) is not { Implicit: false })
                continue;
            given[key.Name] = option is Option<string[]> list ? string.Join(',', parse.GetValue(list) ?? []) : parse.GetValue((Option<string>)option);
        }
        return DaemonSettings.Load(_schema, parse.GetValue(_config), given);
    }

    private static string[] Aliases(ConfigKey key) => key.Alias is null ? [] : [key.Alias];
}
