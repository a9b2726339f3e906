# COINr's own normalisation, aggregation and treatment methods on its ASEM example, written to CSV
# (one file per method) so that `python experiments/coinr_methods.py` can set nqpf_sens's engine
# beside each. The data are built as build_example_coin builds them (denominated, imputed by
# EurAsia_group, screened with dat_thresh 0.9, which removes no unit) from shared/data/asem;
# normalisations and aggregations start from the treated data (winmax 5), treatments from the
# screened data and end with min-max [0, 100].
# Needs R and COINr; run from the project root:
#   Rscript experiments/coinr_methods.R results/coinr_methods
library(COINr)

args <- commandArgs(trailingOnly = TRUE)
out <- if (length(args) >= 1) args[1] else "results/coinr_methods"
dir.create(out, recursive = TRUE, showWarnings = FALSE)
save <- function(data, name) {
  write.csv(data, file.path(out, paste0(name, ".csv")), row.names = FALSE)
}
normalised <- function(coin, dset, f_n, f_n_para = NULL) {
  coin <- Normalise(coin, dset = dset, global_specs = list(f_n = f_n, f_n_para = f_n_para))
  get_dset(coin, "Normalised")
}

# build_example_coin's steps up to Screen, from the CSV export nqpf_sens reads (COINr::ASEM_iData
# differs from it in the last bits of 482 values, enough to break or make exact ties)
asem <- file.path("..", "shared", "data", "asem")
iData <- read.csv(file.path(asem, "asem_iData.csv"), na.strings = "")
iMeta <- read.csv(file.path(asem, "asem_iMeta.csv"), na.strings = "")
screen <- function(iData) {
  coin <- suppressMessages(new_coin(iData, iMeta, quietly = TRUE,
                                    level_names = c("Indicator", "Pillar", "Sub-index", "Index")))
  coin <- Denominate(coin, dset = "Raw")
  coin <- Impute(coin, dset = "Denominated", f_i = "i_mean_grp", use_group = "EurAsia_group")
  coin <- Screen(coin, dset = "Imputed", dat_thresh = 0.9, unit_screen = "byNA")
  stopifnot(length(coin$Analysis$Screened$RemovedUnits) == 0)
  coin
}
screened <- screen(iData)
treated <- Treat(screened, dset = "Screened", global_specs = list(f1_para = list(winmax = 5)))
data <- get_dset(treated, "Treated")

# goalposts per indicator: its 10th and 90th percentiles (4 digits), scale 100, read through iMeta
goalposts <- data.frame(iCode = names(data)[-1],
                        goalpost_lower = signif(sapply(data[-1], quantile, 0.1), 4),
                        goalpost_upper = signif(sapply(data[-1], quantile, 0.9), 4),
                        goalpost_scale = 100, goalpost_trunc2posts = TRUE)
save(goalposts, "goalposts")
row <- match(treated$Meta$Ind$iCode, goalposts$iCode)
for (column in names(goalposts)[-1]) treated$Meta$Ind[[column]] <- goalposts[[column]][row]

# n_dist2ref's iref is a row position: that of DEU, the reference unit of both tools (a unit
# above every indicator's worst value: at the worst, COINr divides by zero)
reference <- match("DEU", data$uCode)
normalisations <- list(
  n_minmax = list("n_minmax", list(l_u = c(1, 100))),
  n_zscore = list("n_zscore", list(m_sd = c(10, 2))),
  n_borda = list("n_borda", NULL),
  n_dist2targ = list("n_dist2targ", "use_iMeta"),
  n_dist2ref = list("n_dist2ref", list(iref = reference)),
  n_goalposts = list("n_goalposts", "use_iMeta")
)
for (name in names(normalisations)) {
  method <- normalisations[[name]]
  save(normalised(treated, "Treated", method[[1]], method[[2]]), name)
}

# Aggregate passes the data frame as `x` but a_copeland names it `X`: called through this
copeland <- function(x, w = NULL) a_copeland(x, w)
minmax <- Normalise(treated, dset = "Treated",
                    global_specs = list(f_n = "n_minmax", f_n_para = list(l_u = c(1, 100))))
aggregations <- list(
  a_amean = list("a_amean", NULL, FALSE),
  a_gmean = list("a_gmean", NULL, FALSE),
  a_hmean = list("a_hmean", NULL, FALSE),
  a_genmean_2 = list("a_genmean", list(p = 2), FALSE),
  a_genmean_0.5 = list("a_genmean", list(p = 0.5), FALSE),
  a_copeland = list("copeland", NULL, TRUE)
)
for (name in names(aggregations)) {
  method <- aggregations[[name]]
  built <- Aggregate(minmax, dset = "Normalised", f_ag = method[[1]], f_ag_para = method[[2]],
                     by_df = method[[3]])
  save(get_dset(built, "Aggregated"), name)
}

# winmax 1 leaves most failing indicators failing, so that the second function f2 is applied
treatments <- list(
  treat_winmax1 = list(f1_para = list(winmax = 1)),
  treat_log_CT_plus = list(f1_para = list(winmax = 1), f2 = "log_CT_plus"),
  treat_boxcox_0.5 = list(f1_para = list(winmax = 1), f2 = "boxcox", f2_para = list(lambda = 0.5)),
  treat_boxcox_0 = list(f1_para = list(winmax = 1), f2 = "boxcox", f2_para = list(lambda = 0)),
  treat_force_win = list(f1_para = list(winmax = 5, force_win = TRUE))
)
# no indicator of ASEM that fails has a negative skew: with every indicator negated, log_CT_plus
# meets negative skews and takes its other branch, -log(max + a - x)
indicators <- iMeta$iCode[iMeta$Type == "Indicator"]
negated <- iData
negated[indicators] <- -negated[indicators]
treatments$treat_log_CT_plus_negated <- treatments$treat_log_CT_plus
for (name in names(treatments)) {
  start <- if (endsWith(name, "_negated")) screen(negated) else screened
  coin <- Treat(start, dset = "Screened", global_specs = treatments[[name]])
  save(normalised(coin, "Treated", "n_minmax", list(l_u = c(0, 100))), name)
}
