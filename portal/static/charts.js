// Draws the platform's charts with the vendored Apache ECharts from the pages' own JSON chart data
// (the same endpoints a person can download). Without JavaScript the pages' inline SVG charts remain.
(function () {
  "use strict";
  var SCOPES = [["scope1_tco2_location", "Scope 1 范围一"], ["scope2_tco2_location", "Scope 2 范围二"]];
  var COLORS = ["#2f7d4f", "#3b6fb6", "#d08a2e", "#8a4fb0", "#b8433c"];

  function trend(data) {
    var series = SCOPES.map(function (s) {
      return { name: s[1], type: "bar", stack: "emissions", data: data.series[s[0]] };
    });
    series.push({
      name: "累计碳积分 credits YTD", type: "line", yAxisIndex: 1, data: data.series.credits_ytd_tco2
    });
    return {
      color: COLORS,
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 70, right: 70, top: 40, bottom: 30 },
      xAxis: { type: "category", data: data.periods },
      yAxis: [{ type: "value", name: "tCO2" }, { type: "value", name: "credits tCO2" }],
      series: series
    };
  }

  function grades(data) {
    var labels = Object.keys(data.grades);
    return {
      color: COLORS,
      tooltip: { trigger: "axis" },
      grid: { left: 50, right: 20, top: 30, bottom: 30 },
      xAxis: { type: "category", name: "grade", data: labels },
      yAxis: { type: "value", name: "enterprises", minInterval: 1 },
      series: [{ name: "enterprises", type: "bar", data: labels.map(function (g) { return data.grades[g]; }) }]
    };
  }

  var KINDS = { trend: trend, grades: grades };

  function draw(element) {
    var kind = KINDS[element.getAttribute("data-kind")];
    if (!kind || typeof echarts === "undefined") { return; }
    fetch(element.getAttribute("data-src"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (data) {
        var chart = echarts.init(element);
        chart.setOption(kind(data));
        element.setAttribute("data-drawn", "true");
        window.addEventListener("resize", function () { chart.resize(); });
      })
      .catch(function () { element.setAttribute("data-drawn", "failed"); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("div.echart[data-src]"), draw);
  });
})();
