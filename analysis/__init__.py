"""leakwatt analysis: paired statistics, prevalence, figures and report rendering."""
